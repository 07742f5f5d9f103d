// Package faults holds fanin's process-level fault-injection tests; it has no non-test code.
//
// The tests build the real ingest binary once (TestMain) and run it as subprocesses against
// in-process JetStream servers, then inject faults a production deployment meets: SIGKILL at
// random moments, the NATS server going away and coming back on the same store, the database
// locked by another process past the busy timeout, an unwritable database file, SIGTERM
// mid-batch, several replicas on the same durables and database, and a stream leader lost in
// a three-node JetStream cluster; and litestream (bin/litestream, `make tools`) replicating the
// database while it is ingested, then restored, also behind the durables. After each, the
// tables must be exact and the durables fully acknowledged.
//
// The default sizes keep the package under a minute or so on two cores; FANIN_SOAK=1 (what a
// `make soak` target would set) runs the full 100,000-message broadcast.
package faults
