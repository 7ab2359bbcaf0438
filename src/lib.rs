//! edgemq: an MQTT broker that remembers. rumqttd routes; every publish is stored in SQLite.
//!
//! - `config`  — the one file (`rumqttd.toml`): rumqttd's sections and ours, defaults, errors.
//! - `broker`  — embedded rumqttd: router, listeners, the `#` store tap, edgemq's own outbox.
//! - `auth`    — Mosquitto password files (`mosquitto_passwd`) for client logins.
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
pub mod config;
pub mod http;
pub mod ingest;
pub mod logging;
pub mod metrics;
pub mod query;
pub mod rpc;
pub mod rules;
pub mod store;
pub mod topic;
