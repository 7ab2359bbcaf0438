-- edgemq's database. Applied at every start-up; every statement is idempotent.
-- Times are unix milliseconds (UTC) unless a column says otherwise.

-- Every publish the broker routed, once, as received.
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,   -- when edgemq received it
    topic       TEXT    NOT NULL,
    payload     BLOB    NOT NULL,   -- the bytes as published
    device_id   TEXT,               -- from the topic or payload, when a route says where
    kind        TEXT,               -- the route's kind (telemetry, status, ...), NULL if unrouted
    device_time INTEGER             -- the device's own timestamp, when it sent one
);
CREATE INDEX IF NOT EXISTS messages_topic_time ON messages (topic, received_at);
