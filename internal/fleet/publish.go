package fleet

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func sortByTime(msgs []Message) {
	sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].At < msgs[j].At })
}

// Publish sends msgs to JetStream and waits for every PubAck. With paced set, each message goes
// out at its At offset from now (a live burst); otherwise as fast as the server takes them (a
// preloaded backlog). The in-flight window is the one js was created with
// (jetstream.WithPublishAsyncMaxPending).
func Publish(ctx context.Context, js jetstream.JetStream, msgs []Message, paced bool) error {
	begin := time.Now()
	futs := make([]jetstream.PubAckFuture, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if paced {
			if d := time.Until(begin.Add(m.At)); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
		}
		for {
			fut, err := js.PublishAsync(m.Subject, m.Payload)
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				continue // the window was full for a while: try again
			}
			if err != nil {
				return fmt.Errorf("publish %s: %w", m.Subject, err)
			}
			futs = append(futs, fut)
			break
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return ctx.Err()
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		}
	}
	return nil
}
