-- edgemq's database. Applied at every start-up; every statement is idempotent.
-- Times are unix milliseconds (UTC) unless a column says otherwise.

-- Every accepted publish, once, as received. Messages on a route that fail decoding go to
-- dead_letters instead.
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,   -- when edgemq received it
    topic       TEXT    NOT NULL,
    payload     BLOB    NOT NULL,   -- the bytes as published
    device_id   TEXT,               -- from the topic or payload, as the route says
    kind        TEXT,               -- the route's kind (telemetry, status, ...); NULL: no route
    device_time INTEGER,            -- the device's own time, else received_at
    client_id   TEXT,               -- the MQTT client that published it (or left it as its will)
    username    TEXT,               -- the username that client logged in with
    qos         INTEGER,            -- the QoS it was published with
    retain      INTEGER,            -- 1: published with the retain flag
    properties  TEXT                -- its MQTT 5 properties as JSON (user_properties, content_type,
                                    -- response_topic, correlation_data in base64, ...); NULL: none
);
-- Per-device history; messages without a device id (no route) do not pay for it.
CREATE INDEX IF NOT EXISTS messages_device_time ON messages (device_id, device_time) WHERE device_id IS NOT NULL;
-- Per-topic history of messages without a device id. A message with one is found by topic
-- through `topic_devices` and the device index, so each message pays for one index, not two.
-- (The first index on every message's topic is replaced by this one at start-up, in code.)
CREATE INDEX IF NOT EXISTS messages_topic_unrouted ON messages (topic, received_at) WHERE device_id IS NULL;
-- Which devices have published on which topics.
CREATE TABLE IF NOT EXISTS topic_devices (
    topic     TEXT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (topic, device_id)
) WITHOUT ROWID;
-- Seed 000's status counts by time range, answered from this index alone (it holds each status
-- value); only status messages pay for it.
DROP INDEX IF EXISTS messages_status_time;
CREATE INDEX IF NOT EXISTS messages_status_counts
    ON messages (device_time, json_extract(payload, '$.status')) WHERE kind = 'status';

-- Retained messages, one per topic: given back to the broker at start-up, so they survive a
-- restart as they do with Mosquitto's persistence.
CREATE TABLE IF NOT EXISTS retained (
    topic      TEXT PRIMARY KEY,
    payload    BLOB    NOT NULL,
    qos        INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    properties TEXT               -- as in messages
) WITHOUT ROWID;

-- Messages on a route that could not be decoded or validated, with the reason.
CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL,
    topic       TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    reason      TEXT    NOT NULL,
    qos         INTEGER,            -- as in messages
    properties  TEXT,               -- as in messages
    client_id   TEXT,               -- as in messages
    username    TEXT,               -- as in messages
    retain      INTEGER             -- as in messages
);

-- Every device seen, with its registry entry (seed 001's names).
CREATE TABLE IF NOT EXISTS devices (
    device_id        TEXT PRIMARY KEY,
    first_seen       INTEGER NOT NULL,
    last_seen        INTEGER NOT NULL,
    is_online        INTEGER NOT NULL DEFAULT 1,
    ip_address       TEXT,
    firmware_version TEXT,
    uptime           INTEGER,
    last_topic       TEXT,
    last_payload     BLOB
) WITHOUT ROWID;

-- Current state of a device by name: `relay/0` = 'true', `eb` = 'ON', `avg/temperature` = '25.1'.
CREATE TABLE IF NOT EXISTS device_state (
    device_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, name)
) WITHOUT ROWID;

-- Alerts: raised once when a condition starts, cleared when it ends (cleared_at NULL: open).
-- Events such as ONLINE are raised and cleared at the same moment.
CREATE TABLE IF NOT EXISTS alerts (
    id         INTEGER PRIMARY KEY,
    device_id  TEXT    NOT NULL,
    type       TEXT    NOT NULL,
    metric     TEXT,
    value      REAL,
    threshold  REAL,
    raised_at  INTEGER NOT NULL,
    cleared_at INTEGER,
    payload    TEXT    NOT NULL    -- JSON
);
CREATE INDEX IF NOT EXISTS alerts_device ON alerts (device_id, raised_at);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (cleared_at) WHERE cleared_at IS NULL;

-- The seeds' own tables, as views over the message store, with the seeds' column names.

-- Seed 000: status_records (status, timestamp).
CREATE VIEW IF NOT EXISTS status_records AS
SELECT id, device_id,
       json_extract(payload, '$.status')    AS status,
       json_extract(payload, '$.timestamp') AS timestamp,
       device_time, received_at
FROM messages WHERE kind = 'status';

-- Seed 001: telemetry, relays (current state) and relay history.
CREATE VIEW IF NOT EXISTS telemetry AS
SELECT id, device_id, topic, device_time AS ts, received_at, payload
FROM messages WHERE kind = 'telemetry';

CREATE VIEW IF NOT EXISTS relays AS
SELECT device_id, CAST(substr(name, 7) AS INTEGER) AS relay_index,
       CASE value WHEN 'true' THEN 1 ELSE 0 END AS current_state, updated_at
FROM device_state WHERE name LIKE 'relay/%';

CREATE VIEW IF NOT EXISTS relay_history AS
SELECT id, device_id,
       json_extract(payload, '$.relay_index')  AS relay_index,
       json_extract(payload, '$.state')        AS state,
       json_extract(payload, '$.triggered_by') AS triggered_by,
       device_time AS ts, received_at
FROM messages WHERE kind = 'relay';

-- Seed 004: temperature_logs, power_status_logs, fingerprint_logs. `timestamp` is the device's
-- own text; `date` is its day (YYYY-MM-DD); `created_at` is when edgemq stored the row (UTC).
CREATE VIEW IF NOT EXISTS temperature_logs AS
SELECT id, device_id,
       json_extract(payload, '$.temperature') AS temperature,
       json_extract(payload, '$.humidity')    AS humidity,
       json_extract(payload, '$.status')      AS status,
       coalesce(json_extract(payload, '$.timestamp'),
                strftime('%Y-%m-%dT%H:%M:%S', device_time / 1000, 'unixepoch')) AS timestamp,
       coalesce(substr(json_extract(payload, '$.timestamp'), 1, 10),
                date(device_time / 1000, 'unixepoch')) AS date,
       datetime(received_at / 1000, 'unixepoch') AS created_at
FROM messages WHERE kind = 'temperature';

CREATE VIEW IF NOT EXISTS power_status_logs AS
SELECT id, device_id,
       CASE json_extract(payload, '$.status') WHEN 'EB_ON' THEN 'ON' WHEN 'EB_OFF' THEN 'OFF' ELSE '' END AS ebstatus,
       CASE json_extract(payload, '$.status') WHEN 'DG_ON' THEN 'ON' WHEN 'DG_OFF' THEN 'OFF' ELSE '' END AS dgstatus,
       coalesce(json_extract(payload, '$.timestamp'),
                strftime('%Y-%m-%dT%H:%M:%S', device_time / 1000, 'unixepoch')) AS timestamp,
       coalesce(substr(json_extract(payload, '$.timestamp'), 1, 10),
                date(device_time / 1000, 'unixepoch')) AS date,
       datetime(received_at / 1000, 'unixepoch') AS created_at
FROM messages WHERE kind = 'power';

CREATE VIEW IF NOT EXISTS fingerprint_logs AS
SELECT id, device_id,
       json_extract(payload, '$.user_id')    AS user_id,
       json_extract(payload, '$.authStatus') AS auth_status,
       coalesce(json_extract(payload, '$.timestamp'),
                strftime('%Y-%m-%dT%H:%M:%S', device_time / 1000, 'unixepoch')) AS timestamp,
       coalesce(substr(json_extract(payload, '$.timestamp'), 1, 10),
                date(device_time / 1000, 'unixepoch')) AS date,
       datetime(received_at / 1000, 'unixepoch') AS created_at
FROM messages WHERE kind = 'fingerprint';

-- Running totals of every numeric field of telemetry, per device and metric (seed 002's /stats),
-- kept by the writer so that reading them never scans the messages.
CREATE TABLE IF NOT EXISTS metric_stats (
    device_id TEXT NOT NULL,
    metric    TEXT NOT NULL,
    count     INTEGER NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    sum       REAL NOT NULL,
    PRIMARY KEY (device_id, metric)
) WITHOUT ROWID;

-- Per-minute rollups of every numeric field of telemetry, kept by the writer, so a chart of a day
-- or a week reads at most one narrow row per minute instead of every message.
CREATE TABLE IF NOT EXISTS metric_minutes (
    device_id TEXT NOT NULL,
    metric    TEXT NOT NULL,
    minute    INTEGER NOT NULL,   -- unix minutes of device time
    count     INTEGER NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    sum       REAL NOT NULL,
    PRIMARY KEY (device_id, metric, minute)
) WITHOUT ROWID;

-- Persistent MQTT sessions (clean session off, or an MQTT 5 session expiry), so a session
-- outlives a restart or a crash: its subscriptions and how far its client has acknowledged the
-- log. Written when a client connects, subscribes, unsubscribes or leaves, and about once a
-- second while the cursor moves, never per message.
CREATE TABLE IF NOT EXISTS sessions (
    client_id     TEXT PRIMARY KEY,
    subscriptions TEXT    NOT NULL,   -- JSON: [[filter, options, subscription id], ...]; options
                                      -- as MQTT's byte: QoS (bits 0-1), No Local (2), Retain As
                                      -- Published (3)
    acked_through INTEGER NOT NULL,   -- every message up to this id was delivered and acknowledged
    sent_through  INTEGER NOT NULL,   -- messages up to this id were sent (resent with DUP)
    expires_at    INTEGER,            -- unix ms once its client left; NULL: connected, or for ever
    updated_at    INTEGER NOT NULL,
    expiry_interval INTEGER           -- seconds it outlives its client; NULL: for ever. A session
                                      -- saved while connected (edgemq was killed) expires this
                                      -- long after updated_at
) WITHOUT ROWID;

-- Each bridge's place in the log: every message up to `acked_through` that its `out` topics
-- match was acknowledged by the upstream broker. Saved about once a second while it moves.
CREATE TABLE IF NOT EXISTS bridges (
    name          TEXT PRIMARY KEY,
    acked_through INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- Webhook calls of rule actions waiting to be sent: written in the transaction that raised or
-- cleared their alert, deleted once the receiver answers 2xx, or given up on at give_up_at.
-- Sent in id order per URL, so a receiver gets a raise before its clear.
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id              INTEGER PRIMARY KEY,
    rule            INTEGER NOT NULL,   -- the rule's and the action's place in the configuration
    action          INTEGER NOT NULL,
    url             TEXT    NOT NULL,
    headers         TEXT    NOT NULL,   -- JSON object
    body            TEXT    NOT NULL,   -- the alert as JSON
    created_at      INTEGER NOT NULL,
    give_up_at      INTEGER NOT NULL,
    timeout_ms      INTEGER NOT NULL,
    retry_max_ms    INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS webhook_outbox_url ON webhook_outbox (url, id);

-- The last value of each thing an on_change rule watches, so that a change across a restart
-- is seen.
CREATE TABLE IF NOT EXISTS rule_values (
    rule       TEXT    NOT NULL,   -- filter|metric|type
    key        TEXT    NOT NULL,   -- the values of the filter's + levels, joined by /
    value      TEXT    NOT NULL,   -- JSON
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (rule, key)
) WITHOUT ROWID;
