package batch_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"fanin/internal/batch"
	"fanin/internal/fault"
	"fanin/internal/natstest"
)

// nameCases are stream and durable names: the ones Validate refuses say why, in wantErr.
// stricter marks the names JetStream would take but Validate refuses on purpose: whitespace
// and control characters other than the ones JetStream itself refuses. No operator means one;
// they come from a paste or a template, and no shell command can name the durable afterwards.
var nameCases = []struct {
	name, wantErr string
	stricter      bool
}{
	{name: "EVENTS"},
	{name: "backend_events_projector"},
	{name: "fanin-2"},
	{name: "ÉVÉNEMENTS"},
	{name: strings.Repeat("a", 255)},
	{name: "a.b c", wantErr: `"a.b c": must not contain whitespace, '.', '*', '>', '/' or '\'`},
	{name: "a*", wantErr: `"a*": must not contain whitespace`},
	{name: "a>", wantErr: `"a>": must not contain whitespace`},
	{name: "a.b", wantErr: `"a.b": must not contain whitespace`},
	{name: "a b", wantErr: `"a b": must not contain whitespace`},
	{name: "a\tb", wantErr: `"a\tb": must not contain whitespace`},
	{name: "a\u00a0b", wantErr: `must not contain whitespace`, stricter: true},
	{name: "a/b", wantErr: `"a/b": must not contain whitespace`},
	{name: `a\b`, wantErr: `"a\\b": must not contain whitespace`},
	{name: "..", wantErr: `must not contain whitespace`},
	{name: "a\x01b", wantErr: `control`, stricter: true},
	{name: "a\x7fb", wantErr: `control`, stricter: true},
	{name: "a\u0085b", wantErr: `whitespace`, stricter: true},
	{name: "a\u2028b", wantErr: `whitespace`, stricter: true},
	{name: "a\vb", wantErr: `whitespace`, stricter: true},
	{name: "a\x00b", wantErr: `"a\x00b": must not contain control characters`},
	{name: "a\xffb", wantErr: `must not contain control characters or invalid UTF-8`},
	{name: strings.Repeat("a", 256), wantErr: `"aaaaaaaaaaaaaaaaaaaa"…: 256 bytes, more than JetStream's 255`},
}

func TestValidateNamesTheFieldOfAnInvalidName(t *testing.T) {
	for _, field := range []string{"Stream", "Durable"} {
		for _, tc := range nameCases {
			c := batch.Started()
			if field == "Stream" {
				c.Stream = tc.name
			} else {
				c.Durable = tc.name
			}
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("%s %q: %v, want valid", field, tc.name, err)
				}
				continue
			}
			if f, _ := fault.Field(err); f != field || !strings.HasPrefix(err.Error(), field+": ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s %q: got %v, want a *fault.FieldError %q", field, tc.name, err, field+": …"+tc.wantErr)
			}
		}
	}
}

func TestValidateRefusesEmptyNames(t *testing.T) {
	c := batch.Results()
	c.Stream = ""
	if err := c.Validate(); err == nil || err.Error() != "Stream: must not be empty" {
		t.Errorf("empty stream: %v", err)
	}
	c = batch.Results()
	c.Durable = ""
	if err := c.Validate(); err == nil || err.Error() != "Durable: must not be empty" {
		t.Errorf("empty durable: %v", err)
	}
}

// TestNamesValidateAcceptsJetStreamAccepts checks the rule against a real server: each name
// Validate accepts can be a stream and a durable, each one it refuses cannot (through the client
// or the server) unless marked stricter, so Validate is no looser than JetStream, and stricter
// only where it says so.
func TestNamesValidateAcceptsJetStreamAccepts(t *testing.T) {
	srv := natstest.Run(t)
	_, js := natstest.Connect(t, srv.ClientURL())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	host := natstest.CreateStream(t, js, "HOST", "host.>")
	for i, tc := range nameCases {
		subject := "n" + strings.Repeat("x", i) + ".>"
		_, serr := js.CreateStream(ctx, jetstream.StreamConfig{Name: tc.name, Subjects: []string{subject}})
		_, cerr := host.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: tc.name, AckPolicy: jetstream.AckExplicitPolicy})
		valid := tc.wantErr == "" || tc.stricter
		if valid && (serr != nil || cerr != nil) {
			t.Errorf("%q: valid for Validate, but JetStream says stream: %v, durable: %v", tc.name, serr, cerr)
		}
		if !valid && serr == nil {
			t.Errorf("%q: refused by Validate, but JetStream created the stream", tc.name)
		}
		if !valid && cerr == nil {
			t.Errorf("%q: refused by Validate, but JetStream created the durable", tc.name)
		}
	}
}
