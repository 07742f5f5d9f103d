-- 0003_dead_letter_incarnation: dead letters keyed by the stream's incarnation, headers kept
-- byte for byte.
--
-- stream_created is the creation time of the stream the message came from, in the fixed-width
-- UTC form of every timestamp (2006-01-02T15:04:05.000000Z); '' when unknown (rows recorded
-- before this migration). A stream deleted and created again starts its sequence numbers at 1
-- again: with stream_created in the key, its new poison messages are kept beside the old ones
-- instead of being dropped as duplicates of them.
--
-- headers is the message's header block in the NATS wire format, as bytes:
-- 'NATS/1.0' CRLF, then one 'Key: value' CRLF line per value (keys in byte order, their case
-- kept; a key's values in the order the message carried them), then an empty line (CRLF);
-- NULL when the message had no headers. It is exact for every header a NATS message can carry
-- (a value without CR or LF that does not begin with a blank): non-UTF-8 values included,
-- which the JSON object stored before this migration replaced with U+FFFD. Old JSON rows are
-- converted; what JSON had already replaced cannot be recovered.
--
-- SQLite cannot change a primary key in place: create the new table, copy, drop, rename, all
-- in this migration's transaction.

-- The 0001 table, for a database whose schema_migrations says 0001 was applied but that has
-- no dead_letters (an older schema): a no-op otherwise.
CREATE TABLE IF NOT EXISTS dead_letters (
    stream      TEXT    NOT NULL,
    stream_seq  INTEGER NOT NULL,
    subject     TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    headers     TEXT,
    recorded_at TEXT    NOT NULL,
    PRIMARY KEY (stream, stream_seq)
);

CREATE TABLE dead_letters_0003 (
    stream         TEXT    NOT NULL,
    stream_created TEXT    NOT NULL DEFAULT '',  -- the stream's creation time; '' when unknown
    stream_seq     INTEGER NOT NULL,
    subject        TEXT    NOT NULL,
    reason         TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    headers        BLOB,                         -- NATS header block, NULL when none
    recorded_at    TEXT    NOT NULL,             -- JetStream publish time
    PRIMARY KEY (stream, stream_created, stream_seq)
);

INSERT INTO dead_letters_0003 (stream, stream_created, stream_seq, subject, reason, payload, headers, recorded_at)
SELECT stream, '', stream_seq, subject, reason, payload,
    CASE
        WHEN headers IS NULL THEN NULL
        WHEN json_valid(headers) AND json_type(headers) = 'object' THEN (
            -- {"Key":["v1","v2"]} → 'NATS/1.0\r\nKey: v1\r\nKey: v2\r\n\r\n'; NULL for {}.
            SELECT CAST('NATS/1.0' || char(13, 10)
                || group_concat(h.key || ': ' || v.value || char(13, 10), '' ORDER BY h.key, v.key)
                || char(13, 10) AS BLOB)
            FROM json_each(dead_letters.headers) AS h,
                json_each(CASE WHEN h.type = 'array' THEN h.value ELSE json_array(h.value) END) AS v
            WHERE v.type NOT IN ('null', 'array', 'object'))
        ELSE CAST(headers AS BLOB)  -- not fanin's JSON: kept as it was
    END,
    recorded_at
FROM dead_letters;

DROP TABLE dead_letters;
ALTER TABLE dead_letters_0003 RENAME TO dead_letters;
