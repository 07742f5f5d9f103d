package store

import (
	"fmt"
	"sort"
	"strings"
)

// SchemaError is a store's error when the database's tables lack columns fanin writes or
// reads: a table an older backend created is left as it was by CREATE TABLE IF NOT EXISTS, and
// every batch would otherwise fail at its first statement, forever.
type SchemaError struct {
	// Path names the database (a file, or a connection string without its password).
	Path string
	// Missing holds, per table, the columns it lacks (sorted).
	Missing map[string][]string
	// Absent holds the tables that do not exist at all.
	Absent map[string]bool
}

// Error returns one line naming every missing column and what to do about it.
func (e *SchemaError) Error() string {
	tables := make([]string, 0, len(e.Missing))
	for t := range e.Missing {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	parts := make([]string, len(tables))
	for i, t := range tables {
		if e.Absent[t] {
			parts[i] = "no table " + t
			continue
		}
		cols := e.Missing[t]
		noun := "columns"
		if len(cols) == 1 {
			noun = "column"
		}
		parts[i] = fmt.Sprintf("table %s lacks %s %s", t, noun, strings.Join(cols, ", "))
	}
	return fmt.Sprintf("database %s: %s (an older schema?): add them or use another database file", e.Path, strings.Join(parts, "; "))
}
