-- 0004_stream_marks: the last stream sequence this database committed, per stream incarnation.
--
-- Every write transaction raises last_seq to the highest sequence of the messages it holds
-- (projected or dead-lettered), and fanin acks a message only after its transaction commits:
-- the database that did the work therefore holds every message its durable acknowledged. A copy
-- restored from a backup (litestream restore) or put back by hand does not: when the durable's
-- ack floor is above last_seq and a message its filter takes lies in between, fanin rewinds the
-- durable to the safe point at start instead of silently missing what was acked since the copy.
-- stream_created names the incarnation, in the fixed-width UTC form of every timestamp.
CREATE TABLE IF NOT EXISTS stream_marks (
    stream         TEXT    NOT NULL,
    stream_created TEXT    NOT NULL,
    last_seq       INTEGER NOT NULL,
    PRIMARY KEY (stream, stream_created)
);
