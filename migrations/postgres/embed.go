// Package postgres holds fanin's PostgreSQL schema as plain SQL files, applied in name order by
// internal/pgsink and recorded in the schema_migrations table, as package migrations holds the
// SQLite one.
//
// The tables, columns and indexes are those of docs/contract.md §4, as SQLite has them after
// its own migrations; timestamps are text in the contract's fixed UTC form (see 0001_init.sql
// for why). Files are named NNNN_description.sql; NNNN is the version. A file, once released,
// is never edited: a change to the schema is a new file.
package postgres

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
