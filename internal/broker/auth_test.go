package broker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"fanin/internal/fault"
)

// runServer starts a JetStream server configured by o (listening on 127.0.0.1, a random port,
// storing in a temp dir) and returns its URL.
func runServer(t *testing.T, o *server.Options) string {
	t.Helper()
	o.Host, o.Port, o.NoLog, o.NoSigs = "127.0.0.1", -1, true, true
	o.JetStream, o.StoreDir = true, t.TempDir()
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s.ClientURL()
}

// logBuffer collects what a logger writes, for a test to read while the client writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// useJetStream connects with cfg and asks JetStream for the account's info through
// Conn.JetStream. It returns what the client logged and the error (nil when it worked); a
// connection the server refuses is an error as soon as the client logs why.
func useJetStream(t *testing.T, cfg ConnConfig) (string, error) {
	t.Helper()
	var logs logBuffer
	c, err := Connect(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		return logs.String(), err
	}
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for !c.IsConnected() {
		if c.IsClosed() {
			t.Fatalf("the client gave up; log:\n%s", logs.String())
		}
		if l := logs.String(); strings.Contains(l, "NATS refused the credentials: retrying") {
			return l, errors.New("refused")
		}
		if time.Now().After(deadline) {
			t.Fatalf("neither connected nor refused after 10s; log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	js, err := c.JetStream()
	if err != nil {
		return logs.String(), err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return logs.String(), err
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConnectWithUserAndPassword(t *testing.T) {
	url := runServer(t, &server.Options{Users: []*server.User{{Username: "fanin", Password: "s3cret-pw"}}})
	if logs, err := useJetStream(t, ConnConfig{URL: url, User: "fanin", Password: "s3cret-pw"}); err != nil {
		t.Fatalf("with the password: %v\n%s", err, logs)
	}
	logs, err := useJetStream(t, ConnConfig{URL: url, User: "fanin", Password: "wrong-pw"})
	if err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if strings.Contains(logs, "wrong-pw") {
		t.Errorf("the log shows the password:\n%s", logs)
	}
}

func TestConnectWithAToken(t *testing.T) {
	url := runServer(t, &server.Options{Authorization: "t0ken-value"})
	if logs, err := useJetStream(t, ConnConfig{URL: url, Token: "t0ken-value"}); err != nil {
		t.Fatalf("with the token: %v\n%s", err, logs)
	}
	logs, err := useJetStream(t, ConnConfig{URL: url, Token: "other-token"})
	if err == nil {
		t.Fatal("a wrong token was accepted")
	}
	if strings.Contains(logs, "other-token") {
		t.Errorf("the log shows the token:\n%s", logs)
	}
}

func TestConnectWithAnNKeySeedFile(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	url := runServer(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})

	if logs, err := useJetStream(t, ConnConfig{URL: url, NKey: writeFile(t, "fanin.nk", seed)}); err != nil {
		t.Fatalf("with the seed: %v\n%s", err, logs)
	}
	if _, err := useJetStream(t, ConnConfig{URL: url, NKey: writeFile(t, "other.nk", otherSeed)}); err == nil {
		t.Fatal("a key the server does not list was accepted")
	}
}

// TestConnectWithCredsOfAnOperatorAccount: decentralized auth, an operator, an account with
// JetStream and a user, the account's JWT in a memory resolver, as nsc would set it up.
func TestConnectWithCredsOfAnOperatorAccount(t *testing.T) {
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	ojwt, err := jwt.NewOperatorClaims(opub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	account := func(js bool) (nkeys.KeyPair, string) {
		kp, _ := nkeys.CreateAccount()
		pub, _ := kp.PublicKey()
		ac := jwt.NewAccountClaims(pub)
		if js {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		ajwt, err := ac.Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		if err := resolver.Store(pub, ajwt); err != nil {
			t.Fatal(err)
		}
		return kp, pub
	}
	_, sysPub := account(false)
	akp, _ := account(true)
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	useed, _ := ukp.Seed()
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(ujwt, useed)
	if err != nil {
		t.Fatal(err)
	}
	url := runServer(t, &server.Options{TrustedOperators: []*jwt.OperatorClaims{oc}, AccountResolver: resolver, SystemAccount: sysPub})

	if logs, err := useJetStream(t, ConnConfig{URL: url, Creds: writeFile(t, "fanin.creds", creds)}); err != nil {
		t.Fatalf("with the creds: %v\n%s", err, logs)
	}
	seed, _ := ukp.Seed()
	if _, err := useJetStream(t, ConnConfig{URL: url, NKey: writeFile(t, "fanin.nk", seed)}); err == nil {
		t.Fatal("the seed alone, without the user JWT, was accepted")
	}
}

func TestJetStreamDomainIsAddressed(t *testing.T) {
	url := runServer(t, &server.Options{JetStreamDomain: "hub"})
	if logs, err := useJetStream(t, ConnConfig{URL: url, JSDomain: "hub"}); err != nil {
		t.Fatalf("domain hub: %v\n%s", err, logs)
	}
	// Nothing answers there: nats.go tells the no-responders status as "not enabled".
	if _, err := useJetStream(t, ConnConfig{URL: url, JSDomain: "elsewhere"}); !errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		t.Fatalf("domain elsewhere: %v, want JetStream not enabled", err)
	}
}

func TestJetStreamAPIPrefixIsAddressed(t *testing.T) {
	url := runServer(t, &server.Options{})
	for _, prefix := range []string{"$JS.API", "$JS.API."} {
		if logs, err := useJetStream(t, ConnConfig{URL: url, JSAPIPrefix: prefix}); err != nil {
			t.Fatalf("prefix %s: %v\n%s", prefix, err, logs)
		}
	}
	if _, err := useJetStream(t, ConnConfig{URL: url, JSAPIPrefix: "$JS.OTHER.API"}); !errors.Is(err, jetstream.ErrJetStreamNotEnabled) {
		t.Fatalf("prefix $JS.OTHER.API: %v, want JetStream not enabled", err)
	}
}

// TestInboxPrefixLetsARestrictedUserGetReplies: a user allowed to subscribe to
// _INBOX_fanin.> only gets JetStream's replies with that inbox prefix, and none without.
func TestInboxPrefixLetsARestrictedUserGetReplies(t *testing.T) {
	url := runServer(t, &server.Options{Users: []*server.User{{Username: "fanin", Password: "pw",
		Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"$JS.API.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX_fanin.>"}},
		}}}})
	cfg := ConnConfig{URL: url, User: "fanin", Password: "pw", InboxPrefix: "_INBOX_fanin"}
	if logs, err := useJetStream(t, cfg); err != nil {
		t.Fatalf("with the inbox prefix: %v\n%s", err, logs)
	}
	cfg.InboxPrefix = ""
	logs, err := useJetStream(t, cfg)
	if err == nil {
		t.Fatal("a reply reached an inbox the user may not subscribe to")
	}
	if !strings.Contains(strings.ToLower(logs), "permissions violation for subscription") {
		t.Errorf("the client did not log the denied subscription:\n%s", logs)
	}
}

// TestSettingsThatCanNeverWorkNameTheirField: each is a *fault.FieldError naming the field,
// found before anything is dialled, and no message holds a secret.
func TestSettingsThatCanNeverWorkNameTheirField(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	seedFile := writeFile(t, "fanin.nk", seed)
	akp, _ := nkeys.CreateAccount()
	aseed, _ := akp.Seed()
	notAUser := writeFile(t, "account.nk", aseed)
	unreadable := writeFile(t, "unreadable.nk", seed)
	if err := os.Chmod(unreadable, 0); err != nil {
		t.Fatal(err)
	}
	garbage := writeFile(t, "garbage", []byte("not a key"))
	const url = "nats://127.0.0.1:4222"
	for _, tc := range []struct {
		name  string
		cfg   ConnConfig
		field string
		want  string
	}{
		{"creds and nkey", ConnConfig{URL: url, Creds: garbage, NKey: seedFile}, "NKey", "excludes Creds"},
		{"nkey and user", ConnConfig{URL: url, NKey: seedFile, User: "u"}, "User", "excludes NKey"},
		{"user and token", ConnConfig{URL: url, User: "u", Password: "hunter2", Token: "t0ken"}, "Token", "excludes User"},
		{"a user in the URL and a token", ConnConfig{URL: "nats://u:hunter2@127.0.0.1:4222", Token: "t0ken"}, "Token", "excludes the user or token in URL"},
		{"a password without a user", ConnConfig{URL: url, Password: "hunter2"}, "Password", "needs User"},
		{"nkey file missing", ConnConfig{URL: url, NKey: "/nonexistent/fanin.nk"}, "NKey", "no such file"},
		{"nkey file holding no key", ConnConfig{URL: url, NKey: garbage}, "NKey", "garbage"},
		{"nkey of an account", ConnConfig{URL: url, NKey: notAUser}, "NKey", "user seed"},
		{"creds file missing", ConnConfig{URL: url, Creds: "/nonexistent/fanin.creds"}, "Creds", "no such file"},
		{"creds file holding no JWT", ConnConfig{URL: url, Creds: garbage}, "Creds", "garbage"},
		{"inbox prefix with a wildcard", ConnConfig{URL: url, InboxPrefix: "_INBOX.*"}, "InboxPrefix", "must not contain"},
		{"inbox prefix with a trailing dot", ConnConfig{URL: url, InboxPrefix: "_INBOX_x."}, "InboxPrefix", "must not end with '.'"},
		{"domain and API prefix", ConnConfig{URL: url, JSDomain: "hub", JSAPIPrefix: "$JS.API"}, "JSAPIPrefix", "excludes JSDomain"},
		{"domain with a dot", ConnConfig{URL: url, JSDomain: "a.b"}, "JSDomain", "one subject token"},
		{"API prefix with a space", ConnConfig{URL: url, JSAPIPrefix: "$JS. API"}, "JSAPIPrefix", "whitespace"},
		{"API prefix with an empty token", ConnConfig{URL: url, JSAPIPrefix: "$JS..API"}, "JSAPIPrefix", "empty token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			field, _ := fault.Field(err)
			if field != tc.field || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want a *fault.FieldError about %s saying %q", err, tc.field, tc.want)
			}
			for _, secret := range []string{"hunter2", "t0ken", string(seed), string(aseed)} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("%v shows a secret", err)
				}
			}
			if _, err := Connect(context.Background(), tc.cfg, quiet); err == nil {
				t.Error("Connect accepted it")
			}
		})
	}
	if os.Geteuid() != 0 {
		if field, _ := fault.Field(ConnConfig{URL: url, NKey: unreadable}.Validate()); field != "NKey" {
			t.Errorf("an unreadable nkey file: want an error about NKey")
		}
	}
	valid := ConnConfig{URL: url, NKey: seedFile, InboxPrefix: "_INBOX_fanin", JSDomain: "hub"}
	if err := valid.Validate(); err != nil {
		t.Errorf("%+v: %v", valid, err)
	}
}
