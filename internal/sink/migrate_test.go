package sink

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"
)

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
	if !slices.Equal(applied, []int{1}) {
		t.Fatalf("first Migrate applied %v, want [1]", applied)
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

	rows, err := s.DB().Query(`SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
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
	if !slices.Equal(got, []int{1}) {
		t.Fatalf("schema_migrations versions = %v, want [1]", got)
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
		if !slices.Equal(total, []int{1}) {
			t.Fatalf("round %d: the two sinks applied %v and %v, want [1] once in total", round, applied[0], applied[1])
		}
		if n := countRows(t, sinks[0], "schema_migrations"); n != 1 {
			t.Fatalf("round %d: schema_migrations has %d rows, want 1", round, n)
		}
		// Both handles see the schema.
		for i, s := range sinks {
			mustWrite(t, s, started("r"+string(rune('a'+i)), "pc1").record(t, uint64(i+1), t0))
		}
	}
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	tests := []struct {
		name string
		fsys fstest.MapFS
	}{
		{"no version", fstest.MapFS{"init.sql": {Data: []byte("SELECT 1;")}}},
		{"version zero", fstest.MapFS{"0000_init.sql": {Data: []byte("SELECT 1;")}}},
		{"not a number", fstest.MapFS{"v1_init.sql": {Data: []byte("SELECT 1;")}}},
		{"version used twice", fstest.MapFS{
			"0001_a.sql": {Data: []byte("SELECT 1;")},
			"001_b.sql":  {Data: []byte("SELECT 1;")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ms, err := loadMigrations(tt.fsys); err == nil {
				t.Fatalf("loadMigrations accepted %v", ms)
			}
		})
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
	if err := s.DB().QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'third'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("the failed migration's table survived: it was not rolled back")
	}
	if n := countRows(t, s, "schema_migrations"); n != 2 {
		t.Errorf("schema_migrations has %d rows, want 2", n)
	}
}
