package sink

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/mattn/go-sqlite3"
)

// txn is a write transaction: database/sql's, on a connection held for it, so that the rows of
// a batch — one statement each — can be written through the driver itself (raw), without
// database/sql's per-call argument conversion, locking and result allocation.
type txn struct {
	*sql.Tx
	conn *sql.Conn
}

// raw runs f with the transaction's SQLite connection. f must not keep it.
func (tx *txn) raw(f func(c *sqlite3.SQLiteConn) error) error {
	return tx.conn.Raw(func(dc any) error {
		c, ok := dc.(*sqlite3.SQLiteConn)
		if !ok {
			return fmt.Errorf("driver connection is a %T, not SQLite's", dc)
		}
		return f(c)
	})
}

// rowStatements are the row statements of one raw call, prepared when first used, and the
// argument slice they share.
type rowStatements struct {
	fly, ins, upd, txt driver.Stmt
	args               []driver.NamedValue
}

// exec runs query (prepared into *st on first use) with args and returns the rows it changed.
func (r *rowStatements) exec(ctx context.Context, c *sqlite3.SQLiteConn, st *driver.Stmt, query string, args ...any) (int64, error) {
	if *st == nil {
		p, err := c.Prepare(query)
		if err != nil {
			return 0, fmt.Errorf("prepare: %w", err)
		}
		*st = p
	}
	if cap(r.args) < len(args) {
		r.args = make([]driver.NamedValue, len(args))
	}
	// NULLs are left out: the driver clears every parameter to NULL before it binds, so
	// binding one again is a cgo crossing for nothing.
	a := r.args[:0]
	for i, v := range args {
		if v != nil {
			a = append(a, driver.NamedValue{Ordinal: i + 1, Value: v})
		}
	}
	ex, ok := (*st).(driver.StmtExecContext)
	if !ok {
		return 0, errors.New("driver statement cannot exec with a context")
	}
	res, err := ex.ExecContext(ctx, a)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// close closes the statements prepared.
func (r *rowStatements) close() {
	for _, st := range []driver.Stmt{r.fly, r.ins, r.upd, r.txt} {
		if st != nil {
			st.Close()
		}
	}
}
