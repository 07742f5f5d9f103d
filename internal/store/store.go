// Package store is the boundary between the pull loop and the databases it projects into:
// what a store reports of each batch it writes, and the types every store reads and writes.
// Every store (package sink for SQLite, pgsink for PostgreSQL) returns a Report; the loop
// records its telemetry and health from it, in one place. The dead letters' rows, filter and
// header block, the executions' rows and summaries, and the schema error are the same for every
// store, so that the commands (cmd/ingest) read either one and neither store imports the other.
// It imports no database driver.
package store

import "time"

// Report is what a store did with one batch of records, committed or not.
type Report struct {
	// DeadLetters are the records written to dead_letters instead of projected, in the order of
	// their Index; every other record was projected (or changed nothing, being a duplicate).
	// Dead letters must be terminated, the other records acked.
	DeadLetters []DeadLetter

	// Inserted and Updated count rows of the projection; Unchanged counts records that changed
	// nothing (redeliveries, duplicates).
	Inserted, Updated, Unchanged int

	// Transactions counts the transactions committed: 1, or more when a record the database
	// refused split the batch to find it.
	Transactions int
	// Commit is the time spent committing them.
	Commit time.Duration

	// System names the database, as OpenTelemetry's db.system.name ("sqlite", "postgresql").
	System string
	// Operation is how the store's transaction begins, as db.operation.name ("BEGIN IMMEDIATE"
	// for SQLite's write lock, "BEGIN" for PostgreSQL).
	Operation string
	// StatusCode is the database's code for the error the write failed with, "" when it did
	// not fail or the error carries none (db.response.status_code).
	StatusCode string
}

// DeadLetter is a record of the batch that was recorded as a dead letter (DeadLetterRow is
// such a row as the commands list it).
type DeadLetter struct {
	// Index is the record's position in the batch.
	Index int
	// Err says why: the record's own decoding error (a *codec.PoisonError) or the database
	// refusing its row. Both are permanent.
	Err error
}
