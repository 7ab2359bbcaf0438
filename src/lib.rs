//! edgemq: an MQTT broker that remembers. rumqttd routes; every publish is stored in SQLite.
//!
//! - `config`  — the one file (`rumqttd.toml`): rumqttd's router and our sections, defaults, errors.
//! - `front_door` — our MQTT listener (3.1/3.1.1/5 on one port) in front of rumqttd's router:
//!   logins, `$SYS`, every publish into ingest, durable acks, backpressure.
//! - `broker`  — embedded rumqttd: the router and edgemq's own links (outbox, requests).
//! - `auth`    — who may connect: config users, Mosquitto password files, anonymous switch.
//! - `ingest`  — `Incoming` → route → decode → validate → `Record` or dead letter; runs rules.
//! - `rules`   — thresholds, anomalies, the offline watchdog → `Alert`s, raised and cleared once.
//! - `store`   — the writer thread that group-commits to SQLite; schema; read connections.
//! - `topic`   — MQTT topic filter matching.
//! - `query`   — the read side shared by http and rpc: seed queries, devices, series, alerts.
//! - `http`    — axum: seed endpoints, `/api/v1`, the dashboard, `/health`, `/metrics`.
//! - `rpc`     — MQTT request/response (seed 004's request topics, MQTT 5 response topics).
//! - `metrics` — the counters every stage updates and `/health` and `/metrics` read.
//! - `logging` — console and rotating file logs.
//! - `app`     — wires the stages together and owns shutdown.

pub mod app;
pub mod auth;
pub mod broker;
pub mod clock;
pub mod config;
pub mod front_door;
pub mod http;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod query;
pub mod rpc;
pub mod rules;
pub mod store;
pub mod topic;
