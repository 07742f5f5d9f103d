// Package migrations holds fanin's schema as plain SQL files, applied in name order by
// internal/sink and recorded in the schema_migrations table.
//
// Files are named NNNN_description.sql; NNNN is the version. A file, once released, is never
// edited: a change to the schema is a new file.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
