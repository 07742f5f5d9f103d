package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"fanin/internal/fault"
)

// ConnConfig says how to reach NATS. The security options work as the nats CLI's do; at most
// one way to authenticate is set (Creds, NKey, User and Password, Token, or a user or token in
// URL), and none is needed when the server asks for none (or for a client certificate only).
type ConnConfig struct {
	// URL is one or more server URLs, comma-separated: nats://, tls://, ws:// or wss://, or a
	// bare host:port (read as nats://). A URL without a port gets the scheme's default (4222,
	// or 80 and 443 for ws and wss).
	URL string
	// Creds is a credentials file (a user JWT and its NKey seed, as nsc writes it), or "".
	Creds string
	// NKey is a file holding an NKey user seed (SU…) whose public key the server lists, or "".
	NKey string
	// User and Password authenticate by name and password, kept out of URL (where ps and
	// logs would show them). Password needs User.
	User, Password string
	// Token authenticates with a token the server was given (authorization { token: … }).
	Token string
	// InboxPrefix replaces "_INBOX" in the subjects replies come back on ("": _INBOX), for a
	// user allowed to subscribe to its own inbox subjects only. No wildcard, no trailing dot.
	InboxPrefix string
	// JSDomain addresses the JetStream of that domain ($JS.<domain>.API), e.g. a hub's from a
	// leaf node; JSAPIPrefix replaces the API prefix $JS.API, e.g. for JetStream imported from
	// another account. At most one of them; "" for the account's own JetStream.
	JSDomain, JSAPIPrefix string
	// TLSCA, TLSCert and TLSKey are PEM files: a CA to trust, and a client certificate and key
	// for mutual TLS. Any of them enables TLS.
	TLSCA, TLSCert, TLSKey string
	// Name is the connection name the server shows (default "fanin").
	Name string
}

// Validate reports, as a *fault.FieldError naming the field, the first setting that can never
// work, whatever the network does: a URL nats.go could not dial (shown with a password or token
// replaced by "xxxxx"), half a client key pair, two ways to authenticate, a password without a
// user, a credentials or NKey seed file that cannot be read or holds no key (it reads them;
// no secret is ever part of the message), an inbox prefix nats.go refuses, both a JetStream
// domain and an API prefix. A server that is down, or a name that does not resolve yet, is
// not an error: Connect waits for it.
func (c ConnConfig) Validate() error {
	if err := validateURLs(c.URL); err != nil {
		return err
	}
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		return fault.Fieldf("TLSKey", "must be set with TLSCert: they go together")
	case c.TLSKey != "" && c.TLSCert == "":
		return fault.Fieldf("TLSCert", "must be set with TLSKey: they go together")
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	return c.validateSubjects()
}

// urlSchemes are the schemes nats.go speaks; the ws ones are websocket.
var urlSchemes = map[string]bool{"nats": false, "tls": false, "ws": true, "wss": true}

// validateURLs checks each comma-separated entry of urls as nats.go will read it.
func validateURLs(urls string) error {
	if strings.TrimSpace(urls) == "" {
		return fault.Fieldf("URL", "must not be empty")
	}
	entries := strings.Split(urls, ",")
	var first *url.URL
	for i, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			// nats.go skips it, and dials 127.0.0.1:4222 when nothing is left: most likely a
			// list built from a variable that is unset.
			return fault.Fieldf("URL", "entry %d of %d is empty (a comma too many?)", i+1, len(entries))
		}
		u, err := parseURL(e)
		if err != nil {
			return fault.Fieldf("URL", "%q: %w", redact(e), err)
		}
		if first == nil {
			first = u
		} else if urlSchemes[u.Scheme] != urlSchemes[first.Scheme] {
			return fault.Fieldf("URL", "%q: %s:// cannot be mixed with %s:// in one list", redact(e), u.Scheme, first.Scheme)
		}
	}
	return nil
}

// parseURL parses one entry of the URL list, a bare host:port as nats.go does (nats://).
func parseURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		// nats.go would dial a bare word at port 4222; such a word is far more often a
		// mistake (a file name, a flag value out of place) than a host.
		if _, _, err := net.SplitHostPort(s); err != nil {
			return nil, errors.New("want host:port, or a URL nats://, tls://, ws:// or wss://")
		}
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL, which may hold a password
		}
		return nil, err
	}
	u.Scheme = strings.ToLower(u.Scheme)
	if _, ok := urlSchemes[u.Scheme]; !ok {
		return nil, fmt.Errorf("scheme %q is not nats, tls, ws or wss", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, errors.New("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("port %s is not between 1 and 65535", p)
		}
	}
	return u, nil
}

// redact replaces the user information of a URL (a password, a token) by "xxxxx", keeping a
// user name; it works on text that does not parse as a URL too.
func redact(s string) string {
	start := strings.Index(s, "://")
	if start < 0 {
		return s
	}
	start += 3
	auth := s[start:]
	if i := strings.IndexAny(auth, "/?#"); i >= 0 {
		auth = auth[:i]
	}
	at := strings.LastIndex(auth, "@")
	if at < 0 {
		return s
	}
	user := ""
	if i := strings.Index(auth[:at], ":"); i >= 0 {
		user = auth[:i+1]
	}
	return s[:start] + user + "xxxxx" + s[start+at:]
}

// Conn is a NATS connection with a way to drain it completely.
type Conn struct {
	*nats.Conn
	cfg    ConnConfig
	closed chan struct{}
	log    *slog.Logger
}

// Connect dials NATS. A server that is down at start is retried in the background, forever, as
// is a lost connection later: the pull loops back off until it is up. A setting that can never
// work (see ConnConfig.Validate) is an error at once.
func Connect(ctx context.Context, cfg ConnConfig, log *slog.Logger) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	closed := make(chan struct{})
	refusals := &refusalLog{log: log}
	name := cfg.Name
	if name == "" {
		name = "fanin"
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(16 << 20), // acks published while reconnecting
		nats.DrainTimeout(30 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			refusals.reset()
			log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			refusals.reset()
			log.Info("NATS connected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { log.Warn("NATS error", "err", err) }),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		// Refused credentials are waited for like a server that is down (an account's JWT may
		// be pushed, a password set, after fanin starts), and said once per refusal.
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectErrHandler(refusals.handle),
	}
	auth, err := cfg.authOptions()
	if err != nil {
		return nil, err
	}
	opts = append(opts, auth...)
	if cfg.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.InboxPrefix))
	}
	if cfg.TLSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.TLSCA))
	}
	if cfg.TLSCert != "" {
		opts = append(opts, nats.ClientCert(cfg.TLSCert, cfg.TLSKey))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", redactAll(cfg.URL), err)
	}
	if !nc.IsConnected() {
		log.Warn("NATS is not reachable yet: retrying in the background", "url", redactAll(cfg.URL))
	}
	return &Conn{Conn: nc, cfg: cfg, closed: closed, log: log}, nil
}

// redactAll redacts each entry of a comma-separated URL list.
func redactAll(urls string) string {
	entries := strings.Split(urls, ",")
	for i, e := range entries {
		entries[i] = redact(e)
	}
	return strings.Join(entries, ",")
}

// Drain flushes what the client still holds (acks above all), unsubscribes, closes the
// connection, and waits until it is closed or ctx ends. nats.Conn.Drain alone returns at once.
//
// A connection that is not connected (NATS down since the start, or reconnecting) cannot be
// drained: it is closed, and the acks it buffered are dropped. That is not an error: their
// messages are redelivered after AckWait and written again, idempotently; nothing is lost.
func (c *Conn) Drain(ctx context.Context) error {
	if c.IsClosed() {
		return nil
	}
	switch err := c.Conn.Drain(); {
	case errors.Is(err, nats.ErrConnectionReconnecting): // nats.go closed it
		c.log.Warn("NATS not connected at shutdown: closed without flushing; unacked messages will be redelivered")
		return nil
	case errors.Is(err, nats.ErrConnectionClosed):
		return nil
	case err != nil:
		c.Close()
		return fmt.Errorf("drain NATS connection: %w", err)
	}
	select {
	case <-c.closed:
		return nil
	case <-ctx.Done():
		c.Close()
		return fmt.Errorf("drain NATS connection: %w", ctx.Err())
	}
}
