//! edgemq: an MQTT broker that remembers. rumqttd routes; every publish is stored in SQLite.
//! Data flows one way: front door → ingest → {rules, store, notify}; http, rpc, bridges and
//! the webhook sender read through query or their own table. `config` and `app` sit on top and
//! are imported by no stage.
//!
//! - `app`     — start-up as a list of stages, and the stop in phases.
//! - `config`  — the one file (`rumqttd.toml`): aggregates each stage's own section, reports errors.
//! - `front_door` — our MQTT listener (3.1/3.1.1/5 on one port, and WebSockets) in front of
//!   rumqttd's router: logins, `$SYS`, every publish into ingest, durable acks, backpressure.
//! - `auth`    — who may connect: config users, Mosquitto password files, anonymous switch.
//! - `acl`     — who may publish and read what: Mosquitto's acl_file.
//! - `tls`     — rustls servers for MQTT, WebSockets and HTTPS, client certificates.
//! - `reload`  — SIGHUP: logins, ACL, certificates and the log file again, connections kept.
//! - `mosquitto_conf` — a Mosquitto configuration file read as edgemq's own.
//! - `broker`  — embedded rumqttd: the router and edgemq's own links (outbox, requests).
//! - `ingest`  — `Incoming` → route → decode → validate → `Record` or dead letter; runs rules.
//! - `rules`   — thresholds, anomalies, change watches, the offline watchdog → `Alert`s, raised
//!   and cleared once; their actions (commands, webhook calls) into the same batch.
//! - `webhook` — sends the outbox's webhook calls until each gets a 2xx.
//! - `bridge`  — store-and-forward to upstream brokers, and commands back in.
//! - `store`   — the writer thread that group-commits to SQLite; schema; read connections.
//! - `notify`  — what leaves after ingest: alerts published on MQTT, live events for the dashboard.
//! - `query`   — the read side shared by http and rpc: seed queries, devices, series, alerts.
//! - `http`    — axum: seed endpoints, `/api/v1`, the dashboard, `/health`, `/metrics`.
//! - `rpc`     — MQTT request/response (seed 004's request topics, MQTT 5 response topics).
//! - `metrics` — the counters every stage updates, each described once for `/metrics` and `$SYS`.
//! - `shutdown` — the stop signal every long-running task holds, and trackers for its phases.
//! - `clock`   — now, ISO 8601 out, and the one ISO 8601 reader.
//! - `listen`  — accepting connections with back-off; the open-files limit.
//! - `topic`   — MQTT topic names and filters: validity and matching.
//! - `logging` — console and rotating file logs.

pub mod acl;
pub mod app;
pub mod auth;
pub mod bridge;
pub mod broker;
pub mod clock;
pub mod config;
pub mod front_door;
pub mod http;
pub mod ingest;
pub mod listen;
pub mod logging;
pub mod metrics;
pub mod mosquitto_conf;
pub mod notify;
pub mod query;
pub mod reload;
pub mod rpc;
pub mod rules;
pub mod shutdown;
pub mod store;
pub mod tls;
pub mod topic;
pub mod webhook;
