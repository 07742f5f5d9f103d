-- 0001_init: the projection tables of ../shared/domain.md.
-- Timestamps are RFC 3339 text in one fixed-width UTC form (2006-01-02T15:04:05.000000Z),
-- so text order is time order.

CREATE TABLE IF NOT EXISTS execution_results (
    result_id        TEXT PRIMARY KEY,
    request_id       TEXT NOT NULL,
    exec_id          TEXT,
    pc_id            TEXT NOT NULL,
    exit_code        INTEGER,                 -- NULL while in flight
    stdout           TEXT NOT NULL DEFAULT '',
    stderr           TEXT NOT NULL DEFAULT '',
    started_at       TEXT NOT NULL,
    finished_at      TEXT,                    -- NULL while in flight
    recorded_at      TEXT NOT NULL,           -- earliest JetStream publish time of the run
    job_id           TEXT,                    -- the manifest id
    version          TEXT,
    reaped           INTEGER NOT NULL DEFAULT 0,
    expires_at       TEXT,
    parent_result_id TEXT,
    skipped          INTEGER NOT NULL DEFAULT 0
);

-- Readers: "results of this execution, newest first" and the reaper's "stale in-flight rows".
CREATE INDEX IF NOT EXISTS execution_results_exec
    ON execution_results (exec_id, recorded_at DESC) WHERE exec_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS execution_results_inflight
    ON execution_results (started_at DESC) WHERE finished_at IS NULL;
CREATE INDEX IF NOT EXISTS execution_results_pc
    ON execution_results (pc_id, recorded_at DESC);
CREATE INDEX IF NOT EXISTS execution_results_request
    ON execution_results (request_id);

-- One row per broadcast, created by the backend before it sends the command; fanin only
-- moves its status and counters.
CREATE TABLE IF NOT EXISTS executions (
    exec_id       TEXT PRIMARY KEY,
    job_id        TEXT NOT NULL,
    version       TEXT NOT NULL,
    initiated_by  TEXT NOT NULL,
    initiated_at  TEXT NOT NULL,
    target_count  INTEGER NOT NULL,
    success_count INTEGER NOT NULL DEFAULT 0,
    failure_count INTEGER NOT NULL DEFAULT 0,
    status        TEXT NOT NULL DEFAULT 'pending'  -- pending → running → completed (or expired)
);

-- Messages that can never be projected: poison payloads and rows the database rejects.
-- The payload is kept byte for byte; a redelivered message is recorded once.
CREATE TABLE IF NOT EXISTS dead_letters (
    stream      TEXT    NOT NULL,
    stream_seq  INTEGER NOT NULL,
    subject     TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    headers     TEXT,                          -- JSON object of header name → values, NULL when none
    recorded_at TEXT    NOT NULL,              -- JetStream publish time
    PRIMARY KEY (stream, stream_seq)
);
