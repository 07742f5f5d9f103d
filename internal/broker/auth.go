package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"fanin/internal/fault"
)

// authMethod is one way to authenticate that a ConnConfig may hold.
type authMethod struct {
	field string // the ConnConfig field that sets it
	set   bool
}

// authMethods lists the ways to authenticate c sets, in the order the errors name them.
func (c ConnConfig) authMethods() []authMethod {
	user := "User"
	if c.User == "" {
		user = "Password" // the one set
	}
	return []authMethod{
		{"URL", urlHasUser(c.URL)},
		{"Creds", c.Creds != ""},
		{"NKey", c.NKey != ""},
		{user, c.User != "" || c.Password != ""},
		{"Token", c.Token != ""},
	}
}

// validateAuth checks that at most one way to authenticate is set, and that the files it
// names hold what nats.go will need, without keeping or showing any secret.
func (c ConnConfig) validateAuth() error {
	var first string
	for _, m := range c.authMethods() {
		switch {
		case !m.set:
		case first == "":
			first = m.field
		case first == "URL":
			return fault.Fieldf(m.field, "excludes the user or token in URL: give one way to authenticate")
		default:
			return fault.Fieldf(m.field, "excludes %s: give one way to authenticate", first)
		}
	}
	if c.Password != "" && c.User == "" {
		return fault.Fieldf("Password", "needs User")
	}
	if c.Creds != "" {
		if err := checkCreds(c.Creds); err != nil {
			return fault.Fieldf("Creds", "%w", err)
		}
	}
	if c.NKey != "" {
		if _, err := nats.NkeyOptionFromSeed(c.NKey); err != nil {
			return fault.Fieldf("NKey", "%q: %w", c.NKey, unprefixed(err))
		}
	}
	return nil
}

// checkCreds reads a credentials file as nats.go will at every connect: a user JWT and a user
// NKey seed. The bytes are wiped once read.
func checkCreds(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err // names the path, nothing else
	}
	defer func() {
		for i := range b {
			b[i] = 'x'
		}
	}()
	if _, err := nkeys.ParseDecoratedJWT(b); err != nil {
		return fmt.Errorf("%q: %w", path, err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("%q: no user NKey seed (%w)", path, err)
	}
	kp.Wipe()
	return nil
}

// unprefixed drops nats.go's "nats: " from an error's text.
func unprefixed(err error) error {
	if s, ok := strings.CutPrefix(err.Error(), "nats: "); ok {
		return fmt.Errorf("%s", s)
	}
	return err
}

// urlHasUser reports whether an entry of the URL list carries a user, password or token.
func urlHasUser(urls string) bool {
	for _, e := range strings.Split(urls, ",") {
		if u, err := parseURL(strings.TrimSpace(e)); err == nil && u.User != nil {
			return true
		}
	}
	return false
}

// authOptions turns the way to authenticate into nats.go options (validated already).
func (c ConnConfig) authOptions() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.Creds != "":
		opts = append(opts, nats.UserCredentials(c.Creds))
	case c.NKey != "":
		o, err := nats.NkeyOptionFromSeed(c.NKey)
		if err != nil {
			return nil, fault.Fieldf("NKey", "%q: %w", c.NKey, unprefixed(err))
		}
		opts = append(opts, o)
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	}
	return opts, nil
}

// validateSubjects checks the inbox prefix as nats.go will, and the JetStream domain or API
// prefix as subjects can hold them.
func (c ConnConfig) validateSubjects() error {
	if c.InboxPrefix != "" {
		if err := subjectPrefix(c.InboxPrefix, false); err != nil {
			return fault.Fieldf("InboxPrefix", "%q: %w", c.InboxPrefix, err)
		}
	}
	if c.JSDomain != "" && c.JSAPIPrefix != "" {
		return fault.Fieldf("JSAPIPrefix", "excludes JSDomain: a domain is the API prefix $JS.<domain>.API")
	}
	if c.JSDomain != "" && strings.ContainsAny(c.JSDomain, ".*> \t\r\n") {
		return fault.Fieldf("JSDomain", "%q: must be one subject token: no '.', '*', '>' or whitespace", c.JSDomain)
	}
	if c.JSAPIPrefix != "" {
		if err := subjectPrefix(c.JSAPIPrefix, true); err != nil {
			return fault.Fieldf("JSAPIPrefix", "%q: %w", c.JSAPIPrefix, err)
		}
	}
	return nil
}

// subjectPrefix checks that p can start a subject: tokens without wildcards or whitespace,
// and (unless trailingDot) no dot at the end.
func subjectPrefix(p string, trailingDot bool) error {
	if trailingDot {
		p = strings.TrimSuffix(p, ".")
	}
	switch {
	case strings.ContainsAny(p, "*> \t\r\n"):
		return fmt.Errorf("must not contain '*', '>' or whitespace")
	case strings.HasSuffix(p, "."):
		return fmt.Errorf("must not end with '.'")
	case p == "" || strings.HasPrefix(p, ".") || strings.Contains(p, ".."):
		return fmt.Errorf("has an empty token")
	}
	return nil
}

// refusalLog logs a server's refusal of the credentials once, until the refusal changes or
// the client gets connected: the client retries every quarter second.
type refusalLog struct {
	log  *slog.Logger
	mu   sync.Mutex
	last string
}

// handle is a nats.ConnErrHandler for failed reconnects: a refusal of the credentials is logged,
// other errors (a server that is down) are not.
func (r *refusalLog) handle(_ *nats.Conn, err error) {
	if err == nil || !isRefusal(err) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err.Error() == r.last {
		return
	}
	r.last = err.Error()
	r.log.Error("NATS refused the credentials: retrying until it accepts them", "err", err)
}

func (r *refusalLog) reset() {
	r.mu.Lock()
	r.last = ""
	r.mu.Unlock()
}

// isRefusal reports whether err is the server refusing the client's credentials.
func isRefusal(err error) bool {
	if errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired) {
		return true
	}
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "authorization") || strings.Contains(s, "authentication")
}
