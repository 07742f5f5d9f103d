package store

import "time"

// Execution is an executions row as the backend creates it before it broadcasts: pending, with
// its counters at 0. fanin itself only moves an execution's status and counters; the demo and
// tests create the row with a store's AddExecution.
type Execution struct {
	ExecID      string
	JobID       string    // the manifest
	Version     string    // the manifest's version
	InitiatedBy string    // who sent the command
	InitiatedAt time.Time // stored in codec.TimeLayout
	TargetCount int       // how many PCs it was sent to
}

// Summary is where one execution stands, with the dead letters beside it: what `ingest demo`
// prints once the broadcast is ingested.
type Summary struct {
	Status                    string              // pending, running, completed or expired
	Target, Succeeded, Failed int                 // target_count, success_count, failure_count
	Results                   ResultCounts        // the execution's execution_results rows
	DeadLetters               []StreamDeadLetters // every stream's (of any execution), by stream name
}

// StreamDeadLetters counts the dead letters of one stream.
type StreamDeadLetters struct {
	Stream string
	Count  int
	Reason string // one of their reasons, the first in text order
}

// ResultCounts counts execution_results rows.
type ResultCounts struct {
	Rows      int
	InFlight  int // rows not finished yet: no finished_at
	Versioned int // rows with their started event's version
}
