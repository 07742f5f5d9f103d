-- 0001_init: the projection tables of docs/contract.md §4 and fanin's bookkeeping, for
-- PostgreSQL: the same tables, columns and indexes as SQLite's migrations 0001–0003 leave.
--
-- Timestamps are text in the contract's fixed-width UTC form (2006-01-02T15:04:05.000000Z),
-- not timestamptz: the projection rules (internal/project) compare and keep them as that text
-- ("the earlier of the two" is text order), so both stores share one copy of the rules and
-- hold byte-identical rows, and a reader moving from SQLite sees the same values. The form
-- casts losslessly where a time is wanted: recorded_at::timestamptz. COLLATE "C" keeps text
-- order byte order whatever the database's locale, as SQLite compares.

CREATE TABLE IF NOT EXISTS execution_results (
    result_id        text COLLATE "C" PRIMARY KEY,
    request_id       text NOT NULL,
    exec_id          text COLLATE "C",
    pc_id            text COLLATE "C" NOT NULL,
    exit_code        integer,                  -- NULL while in flight
    stdout           text NOT NULL DEFAULT '',
    stderr           text NOT NULL DEFAULT '',
    started_at       text COLLATE "C" NOT NULL,
    finished_at      text COLLATE "C",         -- NULL while in flight
    recorded_at      text COLLATE "C" NOT NULL, -- earliest JetStream publish time of the run
    job_id           text,                     -- the manifest id
    version          text,
    reaped           integer NOT NULL DEFAULT 0,
    expires_at       text,
    parent_result_id text,
    skipped          integer NOT NULL DEFAULT 0
);

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
    exec_id       text COLLATE "C" PRIMARY KEY,
    job_id        text NOT NULL,
    version       text NOT NULL,
    initiated_by  text NOT NULL,
    initiated_at  text NOT NULL,
    target_count  integer NOT NULL,
    success_count integer NOT NULL DEFAULT 0,
    failure_count integer NOT NULL DEFAULT 0,
    status        text NOT NULL DEFAULT 'pending'  -- pending → running → completed (or expired)
);

-- Messages that can never be projected: poison payloads and rows the database rejects, kept
-- byte for byte (bytea). stream_created names the stream's incarnation ('' when unknown).
CREATE TABLE IF NOT EXISTS dead_letters (
    stream         text COLLATE "C" NOT NULL,
    stream_created text COLLATE "C" NOT NULL DEFAULT '',
    stream_seq     bigint NOT NULL,
    subject        text NOT NULL,
    reason         text NOT NULL,
    payload        bytea NOT NULL,
    headers        bytea,                     -- NATS header block, NULL when none
    recorded_at    text COLLATE "C" NOT NULL, -- JetStream publish time
    PRIMARY KEY (stream, stream_created, stream_seq)
);

-- Which database this is (written into the durables' metadata), and a safe point per durable.
CREATE TABLE IF NOT EXISTS fanin_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO fanin_meta (key, value) VALUES ('database_id', replace(gen_random_uuid()::text, '-', ''))
    ON CONFLICT (key) DO NOTHING;

CREATE TABLE IF NOT EXISTS durable_positions (
    stream         text NOT NULL,
    durable        text NOT NULL,
    stream_created text NOT NULL,
    ack_floor      bigint NOT NULL,
    updated_at     text NOT NULL,
    PRIMARY KEY (stream, durable)
);
