package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"fanin/internal/batch"
	"fanin/internal/broker"
	"fanin/internal/fault"
	"fanin/internal/output"
	"fanin/internal/pgsink"
	"fanin/internal/sink"
	"fanin/internal/telemetry"
)

// TestEveryFieldTheLibrariesNameIsInTheTable drives every library validation the command
// relies on with each exported field of its default configuration made bad in turn (its zero
// value, -1, a word): each error must be a *fault.FieldError whose field settingFlags knows,
// and told with its flag when it has one. A field that a library starts to validate without
// a row in settingFlags fails here, and so does a row that names no field any more.
func TestEveryFieldTheLibrariesNameIsInTheTable(t *testing.T) {
	fs := newFlagSet("test", "", &bytes.Buffer{})
	cfg := ingestFlags(fs)
	if err := fs.parse(nil, env(nil)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tel := cfg.Telemetry
	tel.Getenv = env(nil)

	named := map[setting]error{} // each field named, with an error naming it
	add := func(config string, errs ...error) {
		t.Helper()
		for _, err := range errs {
			field, _ := fault.Field(err)
			if field == "" {
				t.Errorf("%s: %v (%T) names no field: want a *fault.FieldError", config, err, err)
				continue
			}
			named[setting{config, field}] = err
		}
	}
	add("nats", badFields(cfg.NATS, broker.ConnConfig.Validate)...)
	// Settings bad only together, or in a way badFields does not try.
	withNATS := func(set func(*broker.ConnConfig)) error {
		c := cfg.NATS
		set(&c)
		return c.Validate()
	}
	add("nats",
		withNATS(func(c *broker.ConnConfig) { c.URL, c.User = "nats://u:p@127.0.0.1:4222", "u" }),
		withNATS(func(c *broker.ConnConfig) { c.User, c.Token = "u", "t" }),
		withNATS(func(c *broker.ConnConfig) { c.InboxPrefix = "_INBOX.>" }),
		withNATS(func(c *broker.ConnConfig) { c.JSDomain = "a.b" }),
		withNATS(func(c *broker.ConnConfig) { c.JSAPIPrefix = "$JS API" }))
	add("db", badFields(cfg.DB, sink.Config.Validate)...)
	add("pg", badFields(cfg.PG, pgsink.Config.Validate)...)
	add("events", badFields(cfg.Events, batch.Config.Validate)...)
	add("results", badFields(cfg.Results, batch.Config.Validate)...)
	add("output", badFields(cfg.Output, output.Config.Validate)...)
	add("telemetry", badFields(tel, telemetry.Config.Validate)...)
	add("embedded", broker.ValidateListenAddr(""), broker.ValidateListenAddr("127.0.0.1:99999"))
	for _, dir := range []string{"", file} {
		e, err := broker.StartEmbedded(context.Background(), "127.0.0.1:0", dir, quiet)
		if err == nil {
			e.Shutdown()
			t.Fatalf("StartEmbedded with data dir %q started", dir)
		}
		add("embedded", err)
	}
	add("metrics", telemetry.NewServer("9464", nil, nil, quiet).Start())

	for s, err := range named {
		flag, ok := settingFlags[s]
		switch {
		case !ok:
			t.Errorf("settingFlags lacks %s %s (%v): add it, with the flag that sets it or \"\"", s.config, s.field, err)
		case flag == "":
			if got := flagError(s.config, err); got != err {
				t.Errorf("flagError(%s, %v) = %v, want it as is: no flag sets %s", s.config, err, got, s.field)
			}
		default:
			got := flagError(s.config, err)
			if !strings.HasPrefix(got.Error(), flag+": ") {
				t.Errorf("flagError(%s, %v) = %q, want it to start with %q", s.config, err, got, flag+": ")
			}
			if f, _ := fault.Field(got); f != s.field {
				t.Errorf("flagError(%s, %v) = %v, which no longer unwraps to the *fault.FieldError", s.config, err, got)
			}
		}
	}
	var stale []string
	for s := range settingFlags {
		if named[s] == nil {
			stale = append(stale, s.config+" "+s.field)
		}
	}
	slices.Sort(stale)
	if len(stale) > 0 {
		t.Errorf("settingFlags has rows no library error names: %s", strings.Join(stale, ", "))
	}
}

// TestTheTableSaysWhichFlagSetsEachField sets each flag in turn and sees which fields change
// (after finish has shared the projections' settings): each is the row of that flag, every row
// of the flag changes, and no flag changes a field whose row says no flag sets it.
func TestTheTableSaysWhichFlagSetsEachField(t *testing.T) {
	parsed := func(t *testing.T) (*flagSet, *config) {
		t.Helper()
		fs := newFlagSet("test", "", &bytes.Buffer{})
		cfg := ingestFlags(fs)
		if err := fs.parse(nil, env(nil)); err != nil {
			t.Fatal(err)
		}
		return fs, cfg
	}
	fs, cfg := parsed(t)
	if err := cfg.finish(); err != nil {
		t.Fatal(err)
	}
	defaults := settingValues(cfg)
	fs.VisitAll(func(f *flag.Flag) {
		fs, cfg := parsed(t)
		var changed []setting
		for _, v := range []string{"7", "7ms", "true"} {
			if fs.Set(f.Name, v) != nil {
				continue
			}
			cfg.finish() // shares the projections' settings before it validates: an error is fine
			for s, v := range settingValues(cfg) {
				if !reflect.DeepEqual(v, defaults[s]) {
					changed = append(changed, s)
				}
			}
			break
		}
		for _, s := range changed {
			if got := settingFlags[s]; got != "--"+f.Name {
				t.Errorf("--%s sets %s %s, but settingFlags says %q", f.Name, s.config, s.field, got)
			}
		}
		for s, flag := range settingFlags {
			if flag == "--"+f.Name && !slices.Contains(changed, s) {
				t.Errorf("settingFlags says %s sets %s %s, but it does not", flag, s.config, s.field)
			}
		}
	})
}

// settingValues returns the value of each row of settingFlags in cfg.
func settingValues(cfg *config) map[setting]any {
	configs := map[string]reflect.Value{
		"nats": reflect.ValueOf(cfg.NATS), "db": reflect.ValueOf(cfg.DB), "pg": reflect.ValueOf(cfg.PG), "events": reflect.ValueOf(cfg.Events),
		"results": reflect.ValueOf(cfg.Results), "output": reflect.ValueOf(cfg.Output), "telemetry": reflect.ValueOf(cfg.Telemetry),
	}
	values := map[setting]any{}
	for s := range settingFlags {
		switch s {
		case setting{"embedded", "ListenAddr"}:
			values[s] = cfg.EmbeddedNATS
		case setting{"embedded", "DataDir"}:
			values[s] = cfg.DataDir
		case setting{"metrics", "Addr"}:
			values[s] = cfg.MetricsAddr
		default:
			if v := configs[s.config].FieldByName(s.field); v.IsValid() { // else a stale row
				values[s] = v.Interface()
			}
		}
	}
	return values
}

// badFields returns the errors validate gives for valid, a struct, with each of its exported
// fields in turn set to its zero value, to -1 (signed numbers), to all ones (unsigned ones) and
// to "x" (strings). Func, interface and other fields keep their values.
func badFields[T any](valid T, validate func(T) error) []error {
	var errs []error
	typ := reflect.TypeFor[T]()
	for i := range typ.NumField() {
		if !typ.Field(i).IsExported() {
			continue
		}
		kind := typ.Field(i).Type.Kind()
		bad := []func(reflect.Value){func(v reflect.Value) { v.SetZero() }}
		switch {
		case reflect.Int <= kind && kind <= reflect.Int64:
			bad = append(bad, func(v reflect.Value) { v.SetInt(-1) })
		case reflect.Uint <= kind && kind <= reflect.Uint64:
			bad = append(bad, func(v reflect.Value) { v.SetUint(^uint64(0)) })
		case kind == reflect.String:
			bad = append(bad, func(v reflect.Value) { v.SetString("x") })
		case kind == reflect.Func || kind == reflect.Interface:
			bad = nil
		}
		for _, set := range bad {
			c := valid
			set(reflect.ValueOf(&c).Elem().Field(i))
			if err := validate(c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// TestFlagErrorTellsFieldsAsFlags: the field named and the fields of the same configuration
// the message mentions become flags; quoted values, fields without a flag, other
// configurations' fields and errors that are no *fault.FieldError stay as they are.
func TestFlagErrorTellsFieldsAsFlags(t *testing.T) {
	field := func(f, format string, args ...any) error { return fault.Fieldf(f, format, args...) }
	plain := errors.New("connection refused")
	for _, tc := range []struct {
		name, config string
		err          error
		want         string
	}{
		{"a field", "events", field("BatchSize", "must be between 1 and 10000, not 0"), "--batch: must be between 1 and 10000, not 0"},
		{"each projection its stream", "results", field("Stream", "must not be empty"), "--results-stream: must not be empty"},
		{"another field mentioned", "events", field("AckWait", "5s must be at least twice MaxWait plus 5s"),
			"--ack-wait: 5s must be at least twice --wait plus 5s"},
		{"a quoted value stays", "events", field("Durable", "%q: must not contain whitespace", "MaxWait x"),
			`--events-durable: "MaxWait x": must not contain whitespace`},
		{"an escaped quote in a value", "events", field("Durable", "%q: MaxWait", `a"MaxWait`),
			`--events-durable: "a\"MaxWait": --wait`},
		{"words that are no field stay", "output", field("Bucket", "%q is not a bucket name (Bucket_x, xBucket)", ""),
			`--output-bucket: "" is not a bucket name (Bucket_x, xBucket)`},
		{"a field without a flag", "events", field("MaxAckPending", "10 must be at least twice BatchSize (1000)"),
			"MaxAckPending: 10 must be at least twice BatchSize (1000)"},
		{"a field of another configuration", "db", field("BatchSize", "must be between 1 and 10000, not 0"),
			"BatchSize: must be between 1 and 10000, not 0"},
		{"wrapped", "embedded", fmt.Errorf("start: %w", field("DataDir", "%q: not a directory", "d")),
			`start: --data-dir: "d": not a directory`},
		{"not a field error", "nats", plain, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := flagError(tc.config, tc.err)
			if got.Error() != tc.want {
				t.Errorf("flagError = %q, want %q", got, tc.want)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("flagError(%v) does not unwrap to it", tc.err)
			}
		})
	}
	if flagError("db", nil) != nil {
		t.Error("flagError(nil) is not nil")
	}
}
