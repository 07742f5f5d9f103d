package output

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// errReplicaBehind is the transient failure of an object a replica says is missing while the
// stream's leader has it.
var errReplicaBehind = errors.New("object store replica has not caught up with its leader")

// confirmMissing asks the bucket stream's leader whether the object key is really missing.
// Object lookups use direct gets, which any replica may answer, and a replica that has not yet
// applied an upload says "not found": a note stored on that word would lose the output for
// good. It returns nil when the leader has no such object either (or no such bucket), and
// errReplicaBehind when it has.
func (v *Resolver) confirmMissing(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, v.cfg.StallTimeout)
	defer cancel()
	req, err := json.Marshal(struct {
		LastBySubj string `json:"last_by_subj"`
	}{"$O." + v.cfg.Bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(key))})
	if err != nil {
		return err
	}
	msg, err := v.js.Conn().RequestWithContext(ctx, v.apiPrefix()+"STREAM.MSG.GET.OBJ_"+v.cfg.Bucket, req)
	if err != nil {
		return fmt.Errorf("confirm with the stream leader: %w", err)
	}
	var resp struct {
		Error   *jetstream.APIError `json:"error"`
		Message *struct {
			Data []byte `json:"data"` // the object's metadata, JSON
		} `json:"message"`
	}
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return fmt.Errorf("confirm with the stream leader: %w", err)
	}
	switch {
	case resp.Error != nil && (resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound ||
		resp.Error.ErrorCode == jetstream.JSErrCodeStreamNotFound):
		return nil
	case resp.Error != nil:
		return fmt.Errorf("confirm with the stream leader: %s (%d)", resp.Error.Description, resp.Error.ErrorCode)
	case resp.Message == nil:
		return errors.New("confirm with the stream leader: empty response")
	}
	var meta struct {
		Deleted bool `json:"deleted"`
	}
	if err := json.Unmarshal(resp.Message.Data, &meta); err == nil && meta.Deleted {
		return nil
	}
	return errReplicaBehind
}

// apiPrefix is the JetStream API prefix the resolver's context uses, ending in a dot.
func (v *Resolver) apiPrefix() string {
	o := v.js.Options()
	switch {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return "$JS.API."
}
