package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"fanin/internal/broker"
	"fanin/internal/fault"
)

// checkNATS validates how NATS is reached: the embedded server's address, or the URLs and the
// client's TLS files. The embedded server replaces --nats-url and serves plain nats://, so
// either flag given with --embedded-nats is an error rather than silently ignored.
func (c *config) checkNATS() error {
	given := c.given
	if given == nil {
		given = func(string) string { return "" }
	}
	if c.EmbeddedNATS == "" {
		if err := c.applyContext(given); err != nil {
			return err
		}
		return c.natsError(c.NATS.Validate())
	}
	if given("embedded-nats") != "" && given("nats-url") != "" {
		return fmt.Errorf("--embedded-nats and --nats-url exclude each other%s", fromEnv(given, "embedded-nats", "nats-url"))
	}
	if given("embedded-nats") != "" && given("context") != "" {
		return fmt.Errorf("--embedded-nats and --context exclude each other: the embedded server is reached as it is%s",
			fromEnv(given, "embedded-nats", "context"))
	}
	for _, f := range []struct {
		flag string
		v    *string
	}{
		{"nats-creds", &c.NATS.Creds}, {"nats-nkey", &c.NATS.NKey}, {"nats-user", &c.NATS.User},
		{"nats-password", &c.NATS.Password}, {"nats-token", &c.NATS.Token},
		{"js-domain", &c.NATS.JSDomain}, {"js-api-prefix", &c.NATS.JSAPIPrefix},
	} {
		switch {
		case *f.v == "":
		case given("embedded-nats") != "":
			return fmt.Errorf("--embedded-nats and --%s exclude each other: the embedded server has no users and its JetStream no domain%s",
				f.flag, fromEnv(given, "embedded-nats", f.flag))
		default: // the demo's embedded server, whatever the environment says of another one
			*f.v = ""
		}
	}
	for _, tls := range []struct{ flag, file string }{
		{"nats-tls-ca", c.NATS.TLSCA}, {"nats-tls-cert", c.NATS.TLSCert}, {"nats-tls-key", c.NATS.TLSKey},
	} {
		if tls.file != "" {
			return fmt.Errorf("--embedded-nats and --%s exclude each other: the embedded server serves plain nats://%s",
				tls.flag, fromEnv(given, "embedded-nats", tls.flag))
		}
	}
	return flagError("embedded", broker.ValidateListenAddr(c.EmbeddedNATS))
}

// contextFlags names the flag that sets each ConnConfig field a NATS context may set.
// TestContextFieldsHaveFlags keeps it complete.
var contextFlags = map[string]string{
	"URL": "nats-url", "User": "nats-user", "Password": "nats-password", "Creds": "nats-creds",
	"NKey": "nats-nkey", "Token": "nats-token", "TLSCert": "nats-tls-cert", "TLSKey": "nats-tls-key",
	"TLSCA": "nats-tls-ca", "JSDomain": "js-domain", "JSAPIPrefix": "js-api-prefix",
	"InboxPrefix": "nats-inbox-prefix",
}

// authFields are the ConnConfig fields that say how to authenticate: a context's are taken
// together or not at all, and not at all once a flag (or variable) sets any of them, or a
// user in --nats-url does.
var authFields = []string{"User", "Password", "Creds", "NKey", "Token"}

// applyContext reads the NATS context (--context, or the selected one) and sets from it what
// no flag or variable set, as the nats CLI does; a client certificate and key, like the way
// to authenticate, come from the context only as a whole.
func (c *config) applyContext(given func(string) string) error {
	getenv := c.getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	x, err := broker.LoadContext(c.NATSContext, getenv)
	if err != nil || x == nil {
		return err
	}
	chosen := func(fields ...string) bool {
		for _, f := range fields {
			if given(contextFlags[f]) != "" {
				return true
			}
		}
		return false
	}
	authGiven := chosen(authFields...) || given("nats-url") != "" && strings.Contains(c.NATS.URL, "@")
	c.natsContext, c.fromContext = x, map[string]string{}
	conn := reflect.ValueOf(&c.NATS).Elem()
	for field, v := range x.Settings() {
		switch {
		case chosen(field):
		case slices.Contains(authFields, field) && authGiven:
		case (field == "TLSCert" || field == "TLSKey") && chosen("TLSCert", "TLSKey"):
		default:
			conn.FieldByName(field).SetString(v)
			c.fromContext[field] = x.KeyOf(field)
		}
	}
	return nil
}

// natsError tells an error of ConnConfig.Validate with the flag of the field it names, or
// with the context's key and file when the value came from the NATS context.
func (c *config) natsError(err error) error {
	field, fe := fault.Field(err)
	if key, ok := c.fromContext[field]; ok && fe != nil {
		msg := replaceWords(fe.Err.Error(), func(w string) string {
			if k, ok := c.fromContext[w]; ok {
				return k
			}
			return settingFlags[setting{"nats", w}]
		})
		return fmt.Errorf("NATS context %q (%s): %s: %s", c.natsContext.Name, c.natsContext.Path, key, msg)
	}
	return flagError("nats", err)
}
