package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strconv"
	"strings"
	"time"

	"fanin/internal/batch"
	"fanin/internal/broker"
	"fanin/internal/fault"
	"fanin/internal/output"
	"fanin/internal/pgsink"
	"fanin/internal/sink"
	"fanin/internal/telemetry"
)

// config is everything the flags set.
type config struct {
	NATS            broker.ConnConfig
	DB              sink.Config
	PG              pgsink.Config // used when --db is a PostgreSQL connection string
	Events, Results batch.Config
	Output          output.Config
	LogLevel        string
	LogFormat       string
	CreateStreams   bool
	AdoptDurables   bool
	// RewindDurables recreates the durables from the database's safe point at start: after a
	// restore from a backup, which is behind what they acked.
	RewindDurables bool
	// ManagedDurables binds durables managed elsewhere, never creating or changing them.
	ManagedDurables bool
	EmbeddedNATS    string
	DataDir         string
	ShutdownTimeout time.Duration
	StatsInterval   time.Duration
	// MetricsAddr is where /metrics, /healthz and /readyz are served ("": nowhere).
	MetricsAddr string
	// Pprof also serves the Go profiler under /debug/pprof/ on MetricsAddr (off by default).
	Pprof bool
	// Telemetry is filled by finish (Prometheus) and by the command (Getenv).
	Telemetry telemetry.Config

	// NATSContext names the nats CLI context the NATS settings default to ("": the selected
	// one, if any); finish reads it into natsContext, and notes in fromContext, by ConnConfig
	// field, what it set.
	NATSContext string
	natsContext *broker.Context
	fromContext map[string]string

	// given says how a flag was set: "--name" on the command line, "$VAR" in the environment,
	// "" not at all (its default, or a value the command chose). nil: as if none was.
	given func(name string) string
	// getenv reads the environment the flags were parsed with (nil: an empty one).
	getenv func(string) string
}

// flagSet is a flag.FlagSet whose flags may also come from environment variables; the command
// line wins over the environment, which wins over the default.
type flagSet struct {
	*flag.FlagSet
	env      map[string]string // flag name → environment variable
	fromArgs map[string]bool   // flags set on the command line, filled by parse
	fromEnv  map[string]bool   // flags set from the environment, filled by parse
	environ  func(string) string
}

func newFlagSet(name, synopsis string, out io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), env: map[string]string{},
		fromArgs: map[string]bool{}, fromEnv: map[string]bool{}}
	fs.SetOutput(out)
	fs.Usage = func() {
		out := fs.Output() // io.Discard while parsing: the flag package calls Usage on -help too
		fmt.Fprintf(out, "%s\n\nFlags (each also read from the environment variable shown):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			arg, usage := flag.UnquoteUsage(f)
			fmt.Fprintf(out, "  --%s %s\n", f.Name, arg)
			fmt.Fprintf(out, "        %s\n", strings.ReplaceAll(usage, "\n", "\n        "))
			var extra []string
			if e := fs.env[f.Name]; e != "" {
				extra = append(extra, "env "+e)
			}
			if f.DefValue != "" && f.DefValue != "false" {
				extra = append(extra, "default "+f.DefValue)
			}
			if len(extra) > 0 {
				fmt.Fprintf(out, "        (%s)\n", strings.Join(extra, ", "))
			}
		})
	}
	return fs
}

// parse applies the arguments, then the environment to the flags the arguments left alone.
func (fs *flagSet) parse(args []string, getenv func(string) string) error {
	fs.environ = getenv
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { fs.fromArgs[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		e := fs.env[f.Name]
		if e == "" || err != nil || fs.fromArgs[f.Name] {
			return
		}
		if v := getenv(e); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("$%s: %w", e, serr)
			}
			fs.fromEnv[f.Name] = true
		}
	})
	return err
}

// given says how the flag name was set: "--name", "$VAR" or "" (see config.given).
func (fs *flagSet) given(name string) string {
	switch {
	case fs.fromArgs[name]:
		return "--" + name
	case fs.fromEnv[name]:
		return "$" + fs.env[name]
	}
	return ""
}

func (fs *flagSet) envVar(name, env string) { fs.env[name] = env }

// getenv reads the environment parse was given ("" for everything before, or without one).
func (fs *flagSet) getenv(name string) string {
	if fs.environ == nil {
		return ""
	}
	return fs.environ(name)
}

// ingestFlags registers the flags of "run" (also used by "demo" and "migrate" for the
// subsets they need) and returns the config they fill.
func ingestFlags(fs *flagSet) *config {
	c := &config{DB: sink.DefaultConfig(), PG: pgsink.DefaultConfig(), Events: batch.Started(), Results: batch.Results(),
		Output: output.DefaultConfig(), Telemetry: telemetry.DefaultConfig(), given: fs.given, getenv: fs.getenv}

	fs.StringVar(&c.NATS.URL, "nats-url", "nats://127.0.0.1:4222", "NATS server `URLs`, comma-separated: nats://, tls://, ws:// or wss://, or host:port for nats://\n(without --embedded-nats)")
	fs.envVar("nats-url", "NATS_URL")
	fs.StringVar(&c.NATSContext, "context", "", "nats CLI context `name` (or a context file's absolute path) giving the NATS settings\nthat no flag or variable sets; default the one nats context select chose")
	fs.envVar("context", "NATS_CONTEXT")
	fs.StringVar(&c.NATS.Creds, "nats-creds", "", "NATS credentials `file` (user JWT and NKey seed). At most one of --nats-creds, --nats-nkey,\n--nats-user (with --nats-password), --nats-token, or a user in --nats-url")
	fs.envVar("nats-creds", "NATS_CREDS")
	fs.StringVar(&c.NATS.NKey, "nats-nkey", "", "NKey user seed `file` (SU…) whose public key the server knows")
	fs.envVar("nats-nkey", "NATS_NKEY")
	fs.StringVar(&c.NATS.User, "nats-user", "", "NATS user `name`, with --nats-password")
	fs.envVar("nats-user", "NATS_USER")
	fs.StringVar(&c.NATS.Password, "nats-password", "", "NATS `password` of --nats-user; prefer the variable: arguments show in process listings")
	fs.envVar("nats-password", "NATS_PASSWORD")
	fs.StringVar(&c.NATS.Token, "nats-token", "", "NATS authentication `token`; prefer the variable: arguments show in process listings")
	fs.envVar("nats-token", "NATS_TOKEN")
	fs.StringVar(&c.NATS.InboxPrefix, "nats-inbox-prefix", "", "`prefix` of the subjects replies come back on, in place of _INBOX (for a user allowed\nonly its own inbox subjects)")
	fs.envVar("nats-inbox-prefix", "NATS_INBOX_PREFIX")
	fs.StringVar(&c.NATS.JSDomain, "js-domain", "", "JetStream `domain` holding the streams and the output bucket ($JS.<domain>.API)")
	fs.envVar("js-domain", "NATS_JS_DOMAIN")
	fs.StringVar(&c.NATS.JSAPIPrefix, "js-api-prefix", "", "JetStream API subject `prefix` in place of $JS.API (JetStream imported from another account;\nnot with --js-domain)")
	fs.envVar("js-api-prefix", "NATS_JS_API_PREFIX")
	fs.StringVar(&c.NATS.TLSCA, "nats-tls-ca", "", "`PEM` file of the CA that signed the server's certificate")
	fs.envVar("nats-tls-ca", "NATS_CA")
	fs.StringVar(&c.NATS.TLSCert, "nats-tls-cert", "", "client certificate `PEM` file, for mutual TLS (with --nats-tls-key)")
	fs.envVar("nats-tls-cert", "NATS_CERT")
	fs.StringVar(&c.NATS.TLSKey, "nats-tls-key", "", "client private key `PEM` file, for mutual TLS")
	fs.envVar("nats-tls-key", "NATS_KEY")

	fs.StringVar(&c.DB.Path, "db", c.DB.Path, "SQLite database `file` (created with mode 0600, or --db-mode; its directory must exist), or a PostgreSQL\nconnection string: postgres://user@host/db?sslmode=verify-full, or libpq's host=… dbname=…;\nPG* variables (PGPASSWORD, PGPASSFILE, PGSSLMODE…) and ~/.pgpass fill what it leaves out")
	fs.envVar("db", "FANIN_DB")
	fs.Var((*fileMode)(&c.DB.Mode), "db-mode", "octal permission `mode` given to the database file and its -wal and -shm at every start, for\nreaders under other users: 0640 lets --db-group read, 0660 also lets it share the -shm (faster\nreads, but it may write). Unset: a new file is 0600, an existing one keeps its mode")
	fs.envVar("db-mode", "FANIN_DB_MODE")
	fs.StringVar(&c.DB.Group, "db-group", "", "`group` (name or id) given to the database file and its -wal and -shm at every start;\ningest must be a member. With --db-mode or --db-group the -wal and -shm are kept when ingest stops,\nso readers need no write access to the directory")
	fs.envVar("db-group", "FANIN_DB_GROUP")
	fs.StringVar(&c.DB.Sync, "sync", c.DB.Sync, "`full`: fsync every commit, an ack means the row survives a power cut or OS crash;\nnormal: fsync only at WAL checkpoints, faster, but a power cut or OS crash loses everything\ncommitted since the last checkpoint, up to the WAL's 64 MiB, although those messages were acked\nand are not redelivered; on a new database, the schema too. A process crash loses nothing in\neither mode")
	fs.envVar("sync", "FANIN_SYNC")

	fs.IntVar(&c.Events.BatchSize, "batch", c.Events.BatchSize, "N: most `messages` per fetch (1–10000); caught up, one fetch is one transaction")
	fs.envVar("batch", "FANIN_BATCH")
	fs.IntVar(&c.Events.GroupBatches, "group", c.Events.GroupBatches, "while behind, most fetched `batches` one transaction takes together (0: automatic, about 8000\nmessages; 1: one per fetch; up to 100): bigger transactions drain a backlog faster, since random\nids scatter each batch's writes; at most (group + ⌈group/2⌉ + 2)·N messages are held at once")
	fs.envVar("group", "FANIN_GROUP")
	fs.IntVar(&c.Events.Writers, "db-writers", c.Events.Writers, "`transactions` each projection keeps in flight at once, each committing a group of its own while\nthe next is fetched: 0 is the database's choice, 2 on PostgreSQL (which takes concurrent writers),\n1 on SQLite (one writer: more is a usage error); up to 16")
	fs.envVar("db-writers", "FANIN_DB_WRITERS")
	fs.DurationVar(&c.Events.MaxWait, "wait", c.Events.MaxWait, "T: longest a fetch waits to fill a batch; a caught-up ingester commits at least this often")
	fs.envVar("wait", "FANIN_WAIT")
	fs.DurationVar(&c.Events.AckWait, "ack-wait", c.Events.AckWait, "the durables' AckWait: how soon a crashed instance's unacked messages are redelivered")
	fs.envVar("ack-wait", "FANIN_ACK_WAIT")
	fs.DurationVar(&c.Events.RetryInitial, "retry-initial", c.Events.RetryInitial, "first delay of the retries (at least 1ms): the nak delay of a batch whose write failed and of\nresults whose output could not be read, the first pause after a failed fetch; each retry waits about\n1.5 times longer than the last")
	fs.envVar("retry-initial", "FANIN_RETRY_INITIAL")
	fs.DurationVar(&c.Events.RetryMax, "retry-max", c.Events.RetryMax, "longest delay of the retries (at least --retry-initial): the nak delays stop growing here;\nthe pause after a failed fetch grows to at most 5s")
	fs.envVar("retry-max", "FANIN_RETRY_MAX")
	fs.StringVar(&c.Events.Stream, "events-stream", c.Events.Stream, "`stream` carrying EventStarted on events.started.>")
	fs.envVar("events-stream", "FANIN_EVENTS_STREAM")
	fs.StringVar(&c.Results.Stream, "results-stream", c.Results.Stream, "`stream` carrying ExecResult on results.>")
	fs.envVar("results-stream", "FANIN_RESULTS_STREAM")
	fs.StringVar(&c.Events.Durable, "events-durable", c.Events.Durable, "durable pull consumer `name` of the started projection")
	fs.envVar("events-durable", "FANIN_EVENTS_DURABLE")
	fs.StringVar(&c.Results.Durable, "results-durable", c.Results.Durable, "durable pull consumer `name` of the results projection")
	fs.envVar("results-durable", "FANIN_RESULTS_DURABLE")

	fs.StringVar(&c.Output.Bucket, "output-bucket", c.Output.Bucket, "Object Store `bucket` holding the stdout/stderr that results name in stdout_object / stderr_object")
	fs.envVar("output-bucket", "FANIN_OUTPUT_BUCKET")
	fs.Var((*byteSize)(&c.Output.MaxObjectBytes), "output-max-bytes", "most `bytes` kept of one output object (e.g. 16MiB); the rest is cut and the stored text says so")
	fs.envVar("output-max-bytes", "FANIN_OUTPUT_MAX_BYTES")
	fs.IntVar(&c.Output.Concurrency, "output-concurrency", c.Output.Concurrency, "output `objects` read at once, before their batch's transaction")
	fs.envVar("output-concurrency", "FANIN_OUTPUT_CONCURRENCY")
	fs.Var((*byteSize)(&c.Results.CompleteMemory), "output-memory", "most `bytes` of fetched output held at once (e.g. 128MiB); a batch needing more is written in\nseveral transactions. At least twice --output-max-bytes")
	fs.envVar("output-memory", "FANIN_OUTPUT_MEMORY")

	fs.BoolVar(&c.CreateStreams, "create-streams", false, "create missing streams with the original settings (EVENTS 7 d/256 MiB, RESULTS 30 d/2 GiB);\nwithout it a missing stream is reported and waited for")
	fs.envVar("create-streams", "FANIN_CREATE_STREAMS")
	fs.BoolVar(&c.AdoptDurables, "adopt-durables", false, "take over durables that feed another database (their metadata names it): recreate them and project\nthe whole streams into this --db. Without it fanin refuses to consume from them")
	fs.envVar("adopt-durables", "FANIN_ADOPT_DURABLES")
	fs.BoolVar(&c.RewindDurables, "rewind-durables", false, "recreate the durables at start to deliver again from this --db's safe point, unconditionally:\nonce, on a restored database fanin cannot find behind by itself (PostgreSQL, or SQLite from\nbefore stream_marks). Not with --managed-durables")
	fs.envVar("rewind-durables", "FANIN_REWIND_DURABLES")
	fs.BoolVar(&c.ManagedDurables, "managed-durables", false, "the durables are managed elsewhere (NACK, Terraform, nats consumer add): bind them as they are, never\ncreate, update or recreate them. A missing one is waited for (the log says what to create); one that\nwould lose messages, or that acked messages an empty database lacks, stops ingest (exit 1) saying\nwhat to recreate. Not with --adopt-durables")
	fs.envVar("managed-durables", "FANIN_MANAGED_DURABLES")
	fs.StringVar(&c.EmbeddedNATS, "embedded-nats", "", "start an in-process JetStream server listening on `host:port` and use it (implies --create-streams):\na single binary with no other service")
	fs.envVar("embedded-nats", "FANIN_EMBEDDED_NATS")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "`directory` where the embedded server stores its streams (created if missing)")
	fs.envVar("data-dir", "FANIN_DATA_DIR")

	fs.StringVar(&c.LogLevel, "log-level", "info", "`level`: debug, info, warn or error")
	fs.envVar("log-level", "FANIN_LOG_LEVEL")
	fs.StringVar(&c.LogFormat, "log-format", "text", "`format`: text or json")
	fs.envVar("log-format", "FANIN_LOG_FORMAT")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "longest a graceful shutdown may take before ingest gives up and exits non-zero")
	fs.envVar("shutdown-timeout", "FANIN_SHUTDOWN_TIMEOUT")
	fs.DurationVar(&c.StatsInterval, "stats-interval", 10*time.Second, "how often progress is logged (0 disables)")
	fs.envVar("stats-interval", "FANIN_STATS_INTERVAL")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "127.0.0.1:9464", "`host:port` serving /metrics (Prometheus text), /healthz and /readyz (empty disables). Left at\nthe default while that is busy (another instance on this host), a free port of the same host is\nserved and logged; an address set here or in the environment that cannot be had exits 1.\nTraces and metrics also go over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set")
	fs.envVar("metrics-addr", "FANIN_METRICS_ADDR")
	fs.BoolVar(&c.Pprof, "pprof", false, "also serve the Go profiler (net/http/pprof) under /debug/pprof/ on --metrics-addr. Off by\ndefault: whoever reaches that address can read stack traces and the command line, and a CPU\nprofile costs CPU while it runs")
	fs.envVar("pprof", "FANIN_PPROF")
	return c
}

// finish copies the shared settings into both projections and validates everything.
func (c *config) finish() error {
	c.Results.BatchSize, c.Results.GroupBatches, c.Results.Writers = c.Events.BatchSize, c.Events.GroupBatches, c.Events.Writers
	c.Results.MaxWait, c.Results.AckWait = c.Events.MaxWait, c.Events.AckWait
	c.Results.RetryInitial, c.Results.RetryMax = c.Events.RetryInitial, c.Events.RetryMax
	if c.EmbeddedNATS != "" {
		c.CreateStreams = true
	}
	if c.ManagedDurables && c.AdoptDurables {
		var env string
		if c.given != nil {
			env = fromEnv(c.given, "adopt-durables", "managed-durables")
		}
		return fmt.Errorf("--adopt-durables and --managed-durables exclude each other: adopting recreates the durables; "+
			"managed elsewhere, recreate them yourself to deliver the whole stream%s", env)
	}
	if c.ManagedDurables && c.RewindDurables {
		var env string
		if c.given != nil {
			env = fromEnv(c.given, "rewind-durables", "managed-durables")
		}
		return fmt.Errorf("--rewind-durables and --managed-durables exclude each other: rewinding recreates the durables; "+
			"managed elsewhere, recreate them yourself from the safe point%s", env)
	}
	if c.ShutdownTimeout <= 0 {
		return errors.New("--shutdown-timeout must be positive")
	}
	if c.StatsInterval < 0 {
		return errors.New("--stats-interval must not be negative")
	}
	if err := c.validateDB(); err != nil {
		return err
	}
	if err := c.checkWriters(); err != nil {
		return err
	}
	if err := c.checkNATS(); err != nil {
		return err
	}
	if err := c.Events.Validate(); err != nil {
		return flagError("events", err)
	}
	if err := c.Results.Validate(); err != nil {
		return flagError("results", err)
	}
	if err := c.Output.Validate(); err != nil {
		return flagError("output", err)
	}
	if c.Results.CompleteMemory < 2*c.Output.MaxObjectBytes {
		return fmt.Errorf("--output-memory (%s) must be at least twice --output-max-bytes (%s): a result may name two objects",
			byteSize(c.Results.CompleteMemory), byteSize(c.Output.MaxObjectBytes))
	}
	if c.Events.Stream == c.Results.Stream {
		return errors.New("--events-stream and --results-stream must differ")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format must be text or json, not %q", c.LogFormat)
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr must be host:port or empty, not %q", c.MetricsAddr)
		}
	}
	if c.Pprof && c.MetricsAddr == "" {
		var env string
		if c.given != nil {
			env = fromEnv(c.given, "pprof", "metrics-addr")
		}
		return fmt.Errorf("--pprof needs --metrics-addr: the profiler is served on its listener%s", env)
	}
	c.Telemetry.Prometheus = c.MetricsAddr != ""
	return nil
}

// checkWriters checks --db-writers against the database --db names (SQLite has one writer)
// and gives the PostgreSQL pool a connection for each transaction in flight.
func (c *config) checkWriters() error {
	w := c.Events.Writers
	if !c.usePostgres() {
		if w > 1 {
			var env string
			if c.given != nil {
				env = fromEnv(c.given, "db-writers")
			}
			return fmt.Errorf("--db-writers: %d, but SQLite has one writer: 0 or 1 with a SQLite --db%s", w, env)
		}
		return nil
	}
	if w == 0 {
		w = pgsink.DefaultWriters
	}
	// Both projections' transactions at once, and one for the ledger and the commands.
	c.PG.MaxConns = max(c.PG.MaxConns, 2*w+2)
	return nil
}

// fromEnv says which of the flags came from the environment, for an error about them: " ($NATS_URL
// is set)", or "" when none did.
func fromEnv(given func(string) string, flags ...string) string {
	var vars []string
	for _, f := range flags {
		if g := given(f); strings.HasPrefix(g, "$") {
			vars = append(vars, g)
		}
	}
	switch len(vars) {
	case 0:
		return ""
	case 1:
		return " (" + vars[0] + " is set)"
	}
	return " (" + strings.Join(vars, " and ") + " are set)"
}

// setting is a field of a library's configuration as the command holds it: config names the
// configuration (see settingFlags), field is the Go field a *fault.FieldError names.
type setting struct{ config, field string }

// settingFlags names the flag that sets each field the libraries can report as a
// *fault.FieldError, by configuration: "nats" (broker.ConnConfig), "embedded" (the addr and dir
// of broker.StartEmbedded), "db" (sink.Config), "events" and "results" (the two projections'
// batch.Config: each has its own stream and durable flags, the others are shared), "output"
// (output.Config), "metrics" (telemetry.NewServer's addr) and "telemetry" (telemetry.Config).
// A field no flag sets maps to "": the command keeps its valid default, and an error about it
// stays in the library's words. TestEveryFieldTheLibrariesNameIsInTheTable keeps the table
// complete, TestTheTableSaysWhichFlagSetsEachField keeps it true.
var settingFlags = map[setting]string{
	{"nats", "URL"}:         "--nats-url",
	{"nats", "TLSCert"}:     "--nats-tls-cert",
	{"nats", "TLSKey"}:      "--nats-tls-key",
	{"nats", "Creds"}:       "--nats-creds",
	{"nats", "NKey"}:        "--nats-nkey",
	{"nats", "User"}:        "--nats-user",
	{"nats", "Password"}:    "--nats-password",
	{"nats", "Token"}:       "--nats-token",
	{"nats", "InboxPrefix"}: "--nats-inbox-prefix",
	{"nats", "JSDomain"}:    "--js-domain",
	{"nats", "JSAPIPrefix"}: "--js-api-prefix",

	{"embedded", "ListenAddr"}: "--embedded-nats",
	{"embedded", "DataDir"}:    "--data-dir",

	{"db", "Path"}:         "--db",
	{"db", "Mode"}:         "--db-mode",
	{"db", "Group"}:        "--db-group",
	{"db", "Sync"}:         "--sync",
	{"db", "BusyTimeout"}:  "",
	{"db", "CacheSizeMiB"}: "",

	{"pg", "URL"}:      "--db",
	{"pg", "MaxConns"}: "",

	{"events", "Stream"}:         "--events-stream",
	{"events", "Durable"}:        "--events-durable",
	{"events", "FilterSubject"}:  "",
	{"events", "Kind"}:           "",
	{"events", "BatchSize"}:      "--batch",
	{"events", "GroupBatches"}:   "--group",
	{"events", "MaxBatchBytes"}:  "",
	{"events", "MaxWait"}:        "--wait",
	{"events", "AckWait"}:        "--ack-wait",
	{"events", "MaxAckPending"}:  "",
	{"events", "CompleteMemory"}: "", // --output-memory is the results projection's: only it completes outputs
	{"events", "RetryInitial"}:   "--retry-initial",
	{"events", "RetryMax"}:       "--retry-max",
	{"events", "Writers"}:        "--db-writers",

	{"results", "Stream"}:         "--results-stream",
	{"results", "Durable"}:        "--results-durable",
	{"results", "FilterSubject"}:  "",
	{"results", "Kind"}:           "",
	{"results", "BatchSize"}:      "--batch",
	{"results", "GroupBatches"}:   "--group",
	{"results", "MaxBatchBytes"}:  "",
	{"results", "MaxWait"}:        "--wait",
	{"results", "AckWait"}:        "--ack-wait",
	{"results", "MaxAckPending"}:  "",
	{"results", "CompleteMemory"}: "--output-memory",
	{"results", "RetryInitial"}:   "--retry-initial",
	{"results", "RetryMax"}:       "--retry-max",
	{"results", "Writers"}:        "--db-writers",

	{"output", "Bucket"}:         "--output-bucket",
	{"output", "MaxObjectBytes"}: "--output-max-bytes",
	{"output", "Concurrency"}:    "--output-concurrency",
	{"output", "StallTimeout"}:   "",

	{"metrics", "Addr"}: "--metrics-addr",

	{"telemetry", "ServiceName"}: "",
}

// flagError tells err as the command line's user sees it when it holds a *fault.FieldError
// about a field of config that a flag sets: the field's flag in place of the field, and the
// flags of the other fields of config the message mentions ("--ack-wait: 10s must be at least
// twice --wait plus 5s"). The result still unwraps to err. Any other err, nil too, is returned
// as is.
func flagError(config string, err error) error {
	field, fe := fault.Field(err)
	flag := settingFlags[setting{config, field}]
	if fe == nil || flag == "" {
		return err
	}
	text := flag + ": " + flagNames(config, fe.Err.Error())
	return &flaggedError{text: strings.Replace(err.Error(), fe.Error(), text, 1), err: err}
}

// flagNames replaces, in msg, each word that is a field of config with a flag by that flag,
// leaving quoted values ("…", as %q writes them) alone.
func flagNames(config, msg string) string {
	return replaceWords(msg, func(w string) string { return settingFlags[setting{config, w}] })
}

// replaceWords replaces, in msg, each word that name gives a name to by that name, leaving
// quoted values ("…", as %q writes them) alone.
func replaceWords(msg string, name func(word string) string) string {
	var b strings.Builder
	quoted := false
	for i := 0; i < len(msg); {
		c := msg[i]
		switch {
		case quoted && c == '\\' && i+1 < len(msg):
			b.WriteString(msg[i : i+2])
			i += 2
			continue
		case c == '"':
			quoted = !quoted
		case !quoted && isWordByte(c) && (i == 0 || !isWordByte(msg[i-1])):
			j := i
			for j < len(msg) && isWordByte(msg[j]) {
				j++
			}
			if n := name(msg[i:j]); n != "" {
				b.WriteString(n)
			} else {
				b.WriteString(msg[i:j])
			}
			i = j
			continue
		}
		b.WriteByte(c)
		i++
	}
	return b.String()
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// flaggedError is an error told with flags where the error it wraps names fields.
type flaggedError struct {
	text string
	err  error
}

func (e *flaggedError) Error() string { return e.text }
func (e *flaggedError) Unwrap() error { return e.err }

// byteSize is a flag holding a number of bytes, written as an integer with an optional unit:
// 1048576, 1MiB, 512KiB, 2GiB (also K, M, G, KB, MB, GB, all binary).
type byteSize int64

var byteUnits = []struct {
	suffix string
	n      int64
}{
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10},
	{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
}

func (b *byteSize) Set(s string) error {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size in bytes (e.g. 16MiB, 512KiB, 1048576)", s)
	}
	*b = byteSize(n * mult)
	return nil
}

func (b byteSize) String() string {
	for _, u := range byteUnits[:3] {
		if b != 0 && int64(b)%u.n == 0 {
			return strconv.FormatInt(int64(b)/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// fileMode is a flag holding permission bits, written in octal: 0640, 640, 0o640. Unset, it
// is 0 (and prints as "").
type fileMode fs.FileMode

func (m *fileMode) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O"), 8, 32)
	if err != nil || n == 0 {
		return fmt.Errorf("%q is not an octal permission mode (e.g. 0640)", s)
	}
	*m = fileMode(n)
	return nil
}

func (m fileMode) String() string {
	if m == 0 {
		return ""
	}
	return fmt.Sprintf("%#o", uint32(m))
}
