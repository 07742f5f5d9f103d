package sink

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/mattn/go-sqlite3"

	"fanin/internal/store"
	"fanin/migrations"
)

// A database can say a migration is applied and still lack what it creates: 0001 uses CREATE
// TABLE IF NOT EXISTS, so a table an older backend made is left as it was and the migration is
// recorded all the same. Every batch would then fail at its first statement, forever ("no
// such column: parent_result_id"). CheckSchema finds that at start instead, naming every
// missing column at once.

// checkedTables are the tables whose columns fanin writes or reads.
var checkedTables = []string{"execution_results", "executions", "dead_letters"}

// schemaStatements are the statements fanin runs on checkedTables: the columns CheckSchema
// requires are the ones they name. A statement added to the sink belongs here.
var schemaStatements = []string{
	selectRows, insertStarted, insertStaged, maxRowid, selectExisted, insertRow, updateRow, updateRowText, markRunning, bumpCounts,
	insertDeadLetter, selectDeadLetters, deleteDeadLetter,
}

// CheckSchema reports, as a *store.SchemaError, the columns fanin writes or reads that the tables
// of the database lack. Migrate runs it last; it only reads.
func (s *Sink) CheckSchema(ctx context.Context) error {
	want, err := requiredColumns()
	if err != nil {
		return err
	}
	e := &store.SchemaError{Path: s.cfg.Path, Missing: map[string][]string{}, Absent: map[string]bool{}}
	for _, table := range checkedTables {
		have, err := tableColumns(ctx, s.db, table)
		if err != nil {
			return fmt.Errorf("check schema: %w", err)
		}
		for _, c := range want[table] {
			if !have[c] {
				e.Missing[table] = append(e.Missing[table], c)
			}
		}
		if len(have) == 0 && len(e.Missing[table]) > 0 {
			e.Absent[table] = true
		}
	}
	if len(e.Missing) > 0 {
		return e
	}
	return nil
}

var required struct {
	once sync.Once
	cols map[string][]string
	err  error
}

// requiredColumns returns, per checked table, the columns schemaStatements name, sorted. The
// tables' columns come from the migrations, applied once to an in-memory database, so that
// neither list is written twice.
func requiredColumns() (map[string][]string, error) {
	required.once.Do(func() {
		required.cols, required.err = usedColumns(migrations.FS, schemaStatements)
	})
	return required.cols, required.err
}

// usedColumns applies the migrations of fsys to an in-memory database and returns, per
// checked table, its columns that some statement names (a statement naming several tables
// requires their columns of those names from each).
func usedColumns(fsys fs.FS, statements []string) (map[string][]string, error) {
	ms, err := migrations.Load(fsys)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(connector{dsn: "file::memory:", drv: &sqlite3.SQLiteDriver{}})
	defer db.Close()
	db.SetMaxOpenConns(1) // one connection, one in-memory database
	ctx := context.Background()
	for _, m := range ms {
		if _, err := db.ExecContext(ctx, m.SQL); err != nil {
			return nil, fmt.Errorf("schema check: migration %s: %w", m.Name, err)
		}
	}
	schema := map[string]map[string]bool{}
	for _, table := range checkedTables {
		if schema[table], err = tableColumns(ctx, db, table); err != nil {
			return nil, fmt.Errorf("schema check: %w", err)
		}
	}
	used := map[string][]string{}
	for _, st := range statements {
		words := identifiers(st)
		for _, table := range checkedTables {
			if !words[table] {
				continue
			}
			for w := range words {
				if schema[table][w] && !slices.Contains(used[table], w) {
					used[table] = append(used[table], w)
				}
			}
		}
	}
	for _, cols := range used {
		sort.Strings(cols)
	}
	return used, nil
}

var (
	sqlString = regexp.MustCompile(`'(?:[^']|'')*'`)
	sqlWord   = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
)

// identifiers returns the words of an SQL statement outside its string literals, lowercased.
func identifiers(stmt string) map[string]bool {
	words := map[string]bool{}
	for _, w := range sqlWord.FindAllString(sqlString.ReplaceAllString(stmt, " "), -1) {
		words[strings.ToLower(w)] = true
	}
	return words
}

// tableColumns returns the columns of table (none when it does not exist), lowercased.
func tableColumns(ctx context.Context, db *sql.DB, table string) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", table, err)
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("columns of %s: %w", table, err)
		}
		cols[strings.ToLower(name)] = true
	}
	return cols, rows.Err()
}
