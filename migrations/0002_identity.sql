-- 0002_identity: which database this is, and how far each durable has safely got.
--
-- database_id is written into the durables' metadata when fanin binds them: a durable feeds one
-- database, and a replica whose --db names another one refuses to consume from it (a typo would
-- otherwise take its share of the stream into the wrong file and ack it).
CREATE TABLE IF NOT EXISTS fanin_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT OR IGNORE INTO fanin_meta (key, value) VALUES ('database_id', lower(hex(randomblob(16))));

-- A safe point per durable: every message of the stream at or below ack_floor is in this
-- database (or is not the projection's). It is the ack floor fanin read while the durable had
-- its own settings. When a durable's settings turn out to have been changed outside fanin (a
-- filter edited, say), the messages the wrong settings passed over are somewhere above it, so
-- the durable is recreated to deliver from ack_floor + 1. stream_created names the stream's
-- incarnation: a recreated stream starts its sequence at 1 again, and an old floor means nothing.
CREATE TABLE IF NOT EXISTS durable_positions (
    stream         TEXT    NOT NULL,
    durable        TEXT    NOT NULL,
    stream_created TEXT    NOT NULL,
    ack_floor      INTEGER NOT NULL,
    updated_at     TEXT    NOT NULL,
    PRIMARY KEY (stream, durable)
);
