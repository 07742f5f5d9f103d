package sink

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"fanin/internal/codec"
	"fanin/internal/store"
	"fanin/migrations"
)

// allVersions returns the version of every migration fanin embeds, in order.
func allVersions(t *testing.T) []int {
	t.Helper()
	ms, err := migrations.Load(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	var vs []int
	for _, m := range ms {
		vs = append(vs, m.Version)
	}
	return vs
}

// openUnmigrated opens a sink on cfg without migrating it, closed when the test ends.
func openUnmigrated(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", cfg.Path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestMigrateAppliesInitOnce(t *testing.T) {
	s := openUnmigrated(t, testConfig(t))

	applied, err := s.Migrate(context.Background())
	if err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	if want := allVersions(t); !slices.Equal(applied, want) {
		t.Fatalf("first Migrate applied %v, want %v", applied, want)
	}
	for _, table := range []string{"execution_results", "executions", "dead_letters"} {
		if n := countRows(t, s, table); n != 0 {
			t.Errorf("%s has %d rows after migrating, want 0", table, n)
		}
	}

	applied, err = s.Migrate(context.Background())
	if err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if len(applied) != 0 {
		t.Fatalf("second Migrate applied %v, want nothing", applied)
	}
}

func TestMigrateRecordsVersionInSchemaMigrations(t *testing.T) {
	s := openUnmigrated(t, testConfig(t))
	before := time.Now().UTC().Add(-time.Second)
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}

	rows, err := s.db.Query(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []int
	for rows.Next() {
		var (
			version         int
			name, appliedAt string
		)
		if err := rows.Scan(&version, &name, &appliedAt); err != nil {
			t.Fatal(err)
		}
		got = append(got, version)
		if version == 1 && name != "0001_init.sql" {
			t.Errorf("version 1 is named %q, want 0001_init.sql", name)
		}
		at, err := time.Parse(time.RFC3339, appliedAt)
		if err != nil {
			t.Errorf("applied_at %q is not RFC 3339: %v", appliedAt, err)
		} else if at.Before(before.Truncate(time.Second)) || at.After(time.Now().Add(time.Second)) {
			t.Errorf("applied_at %q is not the time of the migration", appliedAt)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := allVersions(t); !slices.Equal(got, want) {
		t.Fatalf("schema_migrations versions = %v, want %v", got, want)
	}
}

func TestConcurrentMigrationsOfOneFileApplyOnce(t *testing.T) {
	// Repeated on fresh files: the race is between the two check-and-apply transactions.
	for round := range 5 {
		cfg := testConfig(t)
		sinks := []*Sink{openUnmigrated(t, cfg), openUnmigrated(t, cfg)}

		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			applied = make([][]int, len(sinks))
			errs    = make([]error, len(sinks))
		)
		for i, s := range sinks {
			wg.Go(func() {
				<-start
				applied[i], errs[i] = s.Migrate(context.Background())
			})
		}
		close(start)
		wg.Wait()

		var total []int
		for i := range sinks {
			if errs[i] != nil {
				t.Fatalf("round %d: Migrate of sink %d: %v", round, i, errs[i])
			}
			total = append(total, applied[i]...)
		}
		slices.Sort(total)
		if want := allVersions(t); !slices.Equal(total, want) {
			t.Fatalf("round %d: the two sinks applied %v and %v, want %v once in total", round, applied[0], applied[1], want)
		}
		if n, want := countRows(t, sinks[0], "schema_migrations"), len(allVersions(t)); n != want {
			t.Fatalf("round %d: schema_migrations has %d rows, want %d", round, n, want)
		}
		// Both handles see the schema.
		for i, s := range sinks {
			mustWrite(t, s, started("r"+string(rune('a'+i)), "pc1").record(t, uint64(i+1), t0))
		}
	}
}

func TestMigrateAppliesInVersionOrderAndStopsAtAFailure(t *testing.T) {
	s := openUnmigrated(t, testConfig(t))
	fsys := fstest.MapFS{
		"0010_third.sql":  {Data: []byte("CREATE TABLE third (x); INSERT INTO third VALUES (1); SELECT json('broken');")},
		"0002_second.sql": {Data: []byte("INSERT INTO first VALUES (2);")},
		"0001_first.sql":  {Data: []byte("CREATE TABLE first (x);")},
	}
	applied, err := migrate(context.Background(), s, fsys)
	if err == nil {
		t.Fatal("migrate with a broken migration succeeded")
	}
	if !strings.Contains(err.Error(), "0010_third.sql") {
		t.Errorf("error %q does not name the broken migration", err)
	}
	if !slices.Equal(applied, []int{1, 2}) {
		t.Fatalf("applied %v before the failure, want [1 2]", applied)
	}
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'third'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("the failed migration's table survived: it was not rolled back")
	}
	if n := countRows(t, s, "schema_migrations"); n != 2 {
		t.Errorf("schema_migrations has %d rows, want 2", n)
	}
}

// migrationsBefore returns fanin's migrations older than version: a database as an older
// fanin left it.
func migrationsBefore(t *testing.T, version int) fstest.MapFS {
	t.Helper()
	ms, err := migrations.Load(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for _, m := range ms {
		if m.Version < version {
			fsys[m.Name] = &fstest.MapFile{Data: []byte(m.SQL)}
		}
	}
	return fsys
}

func TestMigration3KeepsOldDeadLettersAndConvertsTheirHeaders(t *testing.T) {
	s := openUnmigrated(t, testConfig(t))
	if _, err := migrate(context.Background(), s, migrationsBefore(t, 3)); err != nil {
		t.Fatal(err)
	}
	// Rows as fanin wrote them before: JSON headers (sorted keys, as encoding/json writes a map).
	for _, r := range []struct {
		seq     int
		headers any
	}{
		{1, `{"Nats-Msg-Id":["abc"],"X-Trace":["1","2"],"traceparent":["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"]}`},
		{2, nil},
		{3, `{}`},
		{4, `{"Bad":["\ufffd\ufffd"]}`}, // what JSON made of 0xff 0xfe: past saving
	} {
		mustExec(t, s.db, `INSERT INTO dead_letters VALUES ('RESULTS', ?, 'results.q', 'old', ?, ?, ?)`,
			r.seq, []byte("payload"), r.headers, codec.FormatTime(t0))
	}
	if _, err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}

	dls, err := s.DeadLetters(context.Background(), store.DeadLetterFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 4 {
		t.Fatalf("%d dead letters after the migration, want the 4 old ones", len(dls))
	}
	want := map[uint64]string{
		1: "NATS/1.0\r\nNats-Msg-Id: abc\r\nX-Trace: 1\r\nX-Trace: 2\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n",
		2: "",
		3: "",
		4: "NATS/1.0\r\nBad: \ufffd\ufffd\r\n\r\n",
	}
	for _, d := range dls {
		if d.StreamCreated != "" || string(d.Payload) != "payload" || d.Reason != "old" {
			t.Errorf("old dead letter %d = %+v, want stream_created '' and its payload and reason", d.Seq, d)
		}
		if string(d.RawHeader) != want[d.Seq] {
			t.Errorf("dead letter %d headers = %q, want %q", d.Seq, d.RawHeader, want[d.Seq])
		}
	}
	if h := dls[0].Header; len(h) != 3 || !slices.Equal(h["X-Trace"], []string{"1", "2"}) || h["traceparent"] == nil {
		t.Errorf("dead letter 1 header = %v", h)
	}
	var typ string
	if err := s.db.QueryRow(`SELECT typeof(headers) FROM dead_letters WHERE stream_seq = 1`).Scan(&typ); err != nil {
		t.Fatal(err)
	}
	if typ != "blob" {
		t.Errorf("typeof(headers) = %s, want blob", typ)
	}

	// The new key: the same sequence of another incarnation is another row.
	mustPoison(t, s, poisonOf(1, t0.Add(time.Hour), "new incarnation"))
	if n := countRows(t, s, "dead_letters"); n != 5 {
		t.Fatalf("dead_letters has %d rows, want 5", n)
	}
}

func TestMigration3CopesWithAnOlderSchemaWithoutDeadLetters(t *testing.T) {
	s := openUnmigrated(t, testConfig(t))
	mustExec(t, s.db, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
		INSERT INTO schema_migrations VALUES (1, '0001_init.sql', '2026-01-01T00:00:00Z');`)
	if _, err := migrate(context.Background(), s, migrations.FS); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	var n int
	if err := s.db.QueryRow(`SELECT count(*) FROM pragma_table_info('dead_letters') WHERE name = 'stream_created'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatal("migration 3 did not create dead_letters with stream_created")
	}
}
