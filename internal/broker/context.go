package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
)

// Context is a NATS context as `nats context save` writes it: a JSON file
// $XDG_CONFIG_HOME/nats/context/<name>.json (~/.config/nats/context/ without XDG_CONFIG_HOME),
// the one `nats context select` chose named in $XDG_CONFIG_HOME/nats/context.txt. The fields
// fanin uses are tagged with the ConnConfig field they set; the others it ignores
// (description, jetstream_event_prefix, color_scheme) or refuses (see LoadContext).
type Context struct {
	// Name is the context's name, Path the file it was read from.
	Name, Path string `json:"-"`

	URL         string `json:"url" conn:"URL"`
	User        string `json:"user" conn:"User"`
	Password    string `json:"password" conn:"Password"`
	Creds       string `json:"creds" conn:"Creds"`
	NKey        string `json:"nkey" conn:"NKey"`
	Token       string `json:"token" conn:"Token"`
	Cert        string `json:"cert" conn:"TLSCert"`
	Key         string `json:"key" conn:"TLSKey"`
	CA          string `json:"ca" conn:"TLSCA"`
	JSDomain    string `json:"jetstream_domain" conn:"JSDomain"`
	JSAPIPrefix string `json:"jetstream_api_prefix" conn:"JSAPIPrefix"`
	InboxPrefix string `json:"inbox_prefix" conn:"InboxPrefix"`

	// What fanin cannot honour: LoadContext refuses a context that sets any of them.
	NSC              string `json:"nsc"`
	UserJWT          string `json:"user_jwt"`
	SocksProxy       string `json:"socks_proxy"`
	TLSFirst         bool   `json:"tls_first"`
	WindowsCertStore string `json:"windows_cert_store"`
}

// ContextDir is where the nats CLI keeps its contexts, from getenv's XDG_CONFIG_HOME or HOME;
// "" when neither is set.
func ContextDir(getenv func(string) string) string {
	if d := getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "nats")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".config", "nats")
	}
	return ""
}

// LoadContext reads the NATS context name: a name the nats CLI knows, or the path of a
// context file. An empty name is the selected context (nil, nil when none is selected, its
// context.txt cannot be read, or neither XDG_CONFIG_HOME nor HOME is set). A context that does not exist, does not parse,
// or sets what fanin cannot honour — nsc (it runs the nsc tool), user_jwt, socks_proxy,
// tls_first, windows_cert_store — is an error naming its file. Paths starting with ~/ are
// taken from HOME, and $VARIABLES in creds are expanded, as the nats CLI does.
func LoadContext(name string, getenv func(string) string) (*Context, error) {
	dir := ContextDir(getenv)
	path := name
	switch {
	case name == "":
		if dir == "" {
			return nil, nil
		}
		b, err := os.ReadFile(filepath.Join(dir, "context.txt"))
		if err != nil {
			// None selected, or none this user may read (a service account running with
			// another's HOME): as the nats CLI, no context rather than an error.
			return nil, nil
		}
		if name = strings.TrimSpace(string(b)); name == "" {
			return nil, nil
		}
		if !validContextName(name) {
			return nil, fmt.Errorf("selected NATS context %q (%s): not a context name", name, filepath.Join(dir, "context.txt"))
		}
		path = filepath.Join(dir, "context", name+".json")
	case filepath.IsAbs(name):
		name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	case !validContextName(name):
		return nil, fmt.Errorf("NATS context %q: not a context name (nor an absolute path to a context file)", name)
	case dir == "":
		return nil, fmt.Errorf("NATS context %q: neither XDG_CONFIG_HOME nor HOME is set to find it in", name)
	default:
		path = filepath.Join(dir, "context", name+".json")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("NATS context %q: no such context (%s does not exist)", name, path)
	}
	if err != nil {
		return nil, fmt.Errorf("NATS context %q: %w", name, err)
	}
	x := &Context{Name: name, Path: path}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(x); err != nil {
		// The decoder's message quotes no value of the file, which may hold a password.
		return nil, fmt.Errorf("NATS context %q (%s): not a context file: %w", name, path, err)
	}
	for _, f := range []struct {
		key, why string
		set      bool
	}{
		{"nsc", "fanin does not run the nsc tool: save the credentials with nsc generate creds and give creds", x.NSC != ""},
		{"user_jwt", "give the JWT and its seed as a creds file", x.UserJWT != ""},
		{"socks_proxy", "fanin dials the servers directly", x.SocksProxy != ""},
		{"tls_first", "fanin does not do the TLS handshake first", x.TLSFirst},
		{"windows_cert_store", "give cert, key and ca files", x.WindowsCertStore != ""},
	} {
		if f.set {
			return nil, fmt.Errorf("NATS context %q (%s): %s is not supported: %s", name, path, f.key, f.why)
		}
	}
	home := getenv("HOME")
	for _, p := range []*string{&x.Creds, &x.NKey, &x.Cert, &x.Key, &x.CA} {
		if rest, ok := strings.CutPrefix(*p, "~/"); ok && home != "" {
			*p = filepath.Join(home, rest)
		}
	}
	x.Creds = os.Expand(x.Creds, getenv)
	return x, nil
}

// validContextName is the nats CLI's rule: not empty, no "..", no path separator.
func validContextName(name string) bool {
	return name != "" && !strings.Contains(name, "..") && !strings.ContainsRune(name, os.PathSeparator)
}

// Settings returns what the context sets, by the ConnConfig field it sets: only the fields it
// gives a value.
func (x *Context) Settings() map[string]string {
	out := map[string]string{}
	v := reflect.ValueOf(x).Elem()
	for i, f := range reflect.VisibleFields(v.Type()) {
		if field := f.Tag.Get("conn"); field != "" && v.Field(i).String() != "" {
			out[field] = v.Field(i).String()
		}
	}
	return out
}

// KeyOf returns the context file's key for a ConnConfig field ("TLSCert" → "cert"), or field
// when the context has none.
func (x *Context) KeyOf(field string) string {
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Context]()) {
		if f.Tag.Get("conn") == field {
			return strings.Split(f.Tag.Get("json"), ",")[0]
		}
	}
	return field
}
