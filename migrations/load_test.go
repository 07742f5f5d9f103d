package migrations

import (
	"testing"
	"testing/fstest"

	"fanin/migrations/postgres"
)

// TestBothSchemasLoad checks that the SQLite and PostgreSQL schemas name their files as Load
// wants, and start at version 1.
func TestBothSchemasLoad(t *testing.T) {
	for _, tc := range []struct {
		name string
		ms   func() ([]Migration, error)
	}{
		{"sqlite", func() ([]Migration, error) { return Load(FS) }},
		{"postgres", func() ([]Migration, error) { return Load(postgres.FS) }},
	} {
		ms, err := tc.ms()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(ms) == 0 || ms[0].Version != 1 {
			t.Fatalf("%s: migrations %v, want versions from 1", tc.name, ms)
		}
	}
}

func TestLoadRejectsBadNames(t *testing.T) {
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
			if ms, err := Load(tt.fsys); err == nil {
				t.Fatalf("Load accepted %v", ms)
			}
		})
	}
}
