package main

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/nats-io/nkeys"

	"fanin/internal/broker"
)

// saveContext writes a NATS context named name under the XDG config dir xdg, where `nats
// context save` would.
func saveContext(t *testing.T, xdg, name, json string) string {
	t.Helper()
	dir := filepath.Join(xdg, "nats", "context")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".json")
	if err := os.WriteFile(p, []byte(json), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeSeed writes a new NKey user seed to path and returns its public key.
func writeSeed(t *testing.T, path string) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestContextFieldsHaveFlags: every setting a NATS context can give has the flag that
// overrides it.
func TestContextFieldsHaveFlags(t *testing.T) {
	fs := newFlagSet("test", "", os.Stderr)
	ingestFlags(fs)
	for _, f := range reflect.VisibleFields(reflect.TypeFor[broker.Context]()) {
		field := f.Tag.Get("conn")
		if field == "" {
			continue
		}
		if _, ok := reflect.TypeFor[broker.ConnConfig]().FieldByName(field); !ok {
			t.Errorf("broker.Context.%s sets ConnConfig.%s, which does not exist", f.Name, field)
		}
		if flag := contextFlags[field]; flag == "" || fs.Lookup(flag) == nil {
			t.Errorf("contextFlags[%q] = %q: want the flag that sets it", field, flag)
		}
	}
}

// TestFlagsOverrideTheContext: the context gives what no flag or variable sets; the way to
// authenticate and the client key pair come from it only as a whole; with no --context the
// selected one is read, and with none selected nothing is.
func TestFlagsOverrideTheContext(t *testing.T) {
	xdg, home := t.TempDir(), t.TempDir()
	dir := t.TempDir()
	nkey := filepath.Join(dir, "ctx.nk")
	writeSeed(t, nkey)
	saveContext(t, xdg, "prod", `{"description":"production","url":"nats://n1:4222,nats://n2:4222","nkey":"`+nkey+`",
		"cert":"`+filepath.Join(dir, "c.pem")+`","key":"`+filepath.Join(dir, "k.pem")+`","ca":"~/ca.pem",
		"jetstream_domain":"hub","inbox_prefix":"_INBOX_fanin","jetstream_event_prefix":"ignored","color_scheme":"dark"}`)
	selected := saveContext(t, xdg, "selected", `{"url":"nats://selected:4222","token":"t0ken"}`)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want broker.ConnConfig
	}{
		{name: "the context alone", args: []string{"--context", "prod"},
			want: broker.ConnConfig{URL: "nats://n1:4222,nats://n2:4222", NKey: nkey, TLSCert: filepath.Join(dir, "c.pem"),
				TLSKey: filepath.Join(dir, "k.pem"), TLSCA: filepath.Join(home, "ca.pem"), JSDomain: "hub", InboxPrefix: "_INBOX_fanin"}},
		{name: "flags and variables win", args: []string{"--context", "prod", "--nats-url", "nats://other:4222", "--nats-inbox-prefix", "_INBOX_x"},
			env: map[string]string{"NATS_JS_DOMAIN": "leaf", "NATS_CA": "/etc/ca.pem"},
			want: broker.ConnConfig{URL: "nats://other:4222", NKey: nkey, TLSCert: filepath.Join(dir, "c.pem"),
				TLSKey: filepath.Join(dir, "k.pem"), TLSCA: "/etc/ca.pem", JSDomain: "leaf", InboxPrefix: "_INBOX_x"}},
		{name: "a way to authenticate replaces the context's", args: []string{"--context", "prod", "--nats-user", "fanin"},
			env: map[string]string{"NATS_PASSWORD": "pw"},
			want: broker.ConnConfig{URL: "nats://n1:4222,nats://n2:4222", User: "fanin", Password: "pw", TLSCert: filepath.Join(dir, "c.pem"),
				TLSKey: filepath.Join(dir, "k.pem"), TLSCA: filepath.Join(home, "ca.pem"), JSDomain: "hub", InboxPrefix: "_INBOX_fanin"}},
		{name: "so does a user in the URL", args: []string{"--context", "prod", "--nats-url", "nats://fanin:pw@n3:4222"},
			want: broker.ConnConfig{URL: "nats://fanin:pw@n3:4222", TLSCert: filepath.Join(dir, "c.pem"),
				TLSKey: filepath.Join(dir, "k.pem"), TLSCA: filepath.Join(home, "ca.pem"), JSDomain: "hub", InboxPrefix: "_INBOX_fanin"}},
		{name: "half a key pair replaces the context's pair", args: []string{"--context", "prod", "--nats-tls-cert", "/etc/c.pem", "--nats-tls-key", "/etc/k.pem"},
			want: broker.ConnConfig{URL: "nats://n1:4222,nats://n2:4222", NKey: nkey, TLSCert: "/etc/c.pem",
				TLSKey: "/etc/k.pem", TLSCA: filepath.Join(home, "ca.pem"), JSDomain: "hub", InboxPrefix: "_INBOX_fanin"}},
		{name: "NATS_CONTEXT", env: map[string]string{"NATS_CONTEXT": "prod", "NATS_URL": "nats://env:4222"},
			want: broker.ConnConfig{URL: "nats://env:4222", NKey: nkey, TLSCert: filepath.Join(dir, "c.pem"),
				TLSKey: filepath.Join(dir, "k.pem"), TLSCA: filepath.Join(home, "ca.pem"), JSDomain: "hub", InboxPrefix: "_INBOX_fanin"}},
		{name: "a context file's path", args: []string{"--context", selected},
			want: broker.ConnConfig{URL: "nats://selected:4222", Token: "t0ken"}},
		{name: "the selected context", env: map[string]string{"NATS_CONTEXT": ""}, // context.txt, below
			want: broker.ConnConfig{URL: "nats://selected:4222", Token: "t0ken"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			environ := map[string]string{"XDG_CONFIG_HOME": xdg, "HOME": home}
			for k, v := range tc.env {
				environ[k] = v
			}
			txt := filepath.Join(xdg, "nats", "context.txt")
			os.Remove(txt)
			if tc.name == "the selected context" {
				if err := os.WriteFile(txt, []byte("selected\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			fs := newFlagSet("test", "", os.Stderr)
			cfg := ingestFlags(fs)
			if err := fs.parse(tc.args, env(environ)); err != nil {
				t.Fatal(err)
			}
			if err := cfg.finish(); err != nil {
				t.Fatal(err)
			}
			if cfg.NATS != tc.want {
				t.Errorf("NATS settings\n got %+v\nwant %+v", cfg.NATS, tc.want)
			}
		})
	}

	// No --context, none selected — or a context.txt that cannot be read, as for a service
	// user running with another's HOME: the defaults, as the nats CLI does.
	os.Remove(filepath.Join(xdg, "nats", "context.txt"))
	for _, unreadable := range []bool{false, true} {
		if unreadable {
			if err := os.Mkdir(filepath.Join(xdg, "nats", "context.txt"), 0o700); err != nil { // unreadable even by root
				t.Fatal(err)
			}
		}
		fs := newFlagSet("test", "", os.Stderr)
		cfg := ingestFlags(fs)
		if err := fs.parse(nil, env(map[string]string{"XDG_CONFIG_HOME": xdg})); err != nil {
			t.Fatal(err)
		}
		if err := cfg.finish(); err != nil || cfg.NATS != (broker.ConnConfig{URL: "nats://127.0.0.1:4222"}) || cfg.natsContext != nil {
			t.Errorf("without a context (context.txt unreadable: %v): %+v, %v", unreadable, cfg.NATS, err)
		}
	}
}

// TestNATSVariablesAreTheCLIs: each NATS flag reads the variable the nats CLI's users expect.
func TestNATSVariablesAreTheCLIs(t *testing.T) {
	want := map[string]string{"context": "NATS_CONTEXT", "nats-url": "NATS_URL", "nats-creds": "NATS_CREDS",
		"nats-nkey": "NATS_NKEY", "nats-user": "NATS_USER", "nats-password": "NATS_PASSWORD", "nats-token": "NATS_TOKEN",
		"nats-tls-ca": "NATS_CA", "nats-tls-cert": "NATS_CERT", "nats-tls-key": "NATS_KEY",
		"nats-inbox-prefix": "NATS_INBOX_PREFIX", "js-domain": "NATS_JS_DOMAIN", "js-api-prefix": "NATS_JS_API_PREFIX"}
	environ := map[string]string{}
	for _, v := range want {
		environ[v] = "value-of-" + v
	}
	fs := newFlagSet("test", "", os.Stderr)
	ingestFlags(fs)
	if err := fs.parse(nil, env(environ)); err != nil {
		t.Fatal(err)
	}
	for flag, v := range want {
		if got := fs.Lookup(flag).Value.String(); got != "value-of-"+v || fs.given(flag) != "$"+v {
			t.Errorf("--%s = %q (given %q), want it from $%s", flag, got, fs.given(flag), v)
		}
	}
}
