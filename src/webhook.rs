//! The webhook sender: POSTs the calls rule actions wrote to the outbox (`webhook_outbox`), in
//! id order per URL, each with its timeout. A 2xx deletes the call; anything else is tried again
//! after a wait that doubles from one second up to the action's `retry_max`, until the call is
//! older than its `give_up_after` (then it is counted and logged, and deleted). The outbox is in
//! the database, so calls survive restarts; a call whose 2xx was lost to a crash is sent again
//! (each carries `X-Edgemq-Delivery`, its outbox id, for the receiver to tell).

use crate::metrics::Metrics;
use crate::shutdown::Stopping;
use crate::store::SideConnection;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// One call in the outbox.
struct Call {
    id: i64,
    rule: usize,
    action: usize,
    url: String,
    headers: String,
    body: String,
    give_up_at: i64,
    timeout_ms: i64,
    retry_max_ms: i64,
    attempts: i64,
    next_attempt_at: i64,
}

/// What happened to one try.
enum Outcome {
    Delivered,
    Failed(String),
}

pub struct Sender {
    conn: SideConnection,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
}

/// Runs until the stop; wakes when a commit wrote calls to the outbox and when the next call is
/// due.
pub async fn run(database: PathBuf, metrics: Arc<Metrics>, mut stopping: Stopping) {
    let sender = match Sender::open(&database, metrics.clone()) {
        Ok(sender) => sender,
        Err(e) => return tracing::error!("webhooks: cannot open the outbox: {e}"),
    };
    loop {
        let wait = match sender.round().await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::warn!("webhooks: reading the outbox: {e}");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = metrics.webhooks_written.notified() => {}
            _ = stopping.wait() => return,
        }
    }
}

impl Sender {
    fn open(database: &std::path::Path, metrics: Arc<Metrics>) -> Result<Sender, String> {
        let conn = SideConnection::open(database).map_err(|e| e.to_string())?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("edgemq/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Sender {
            conn,
            http,
            metrics,
        })
    }

    /// Sends the first call of each URL that is due, all at once; how long until the next one
    /// is due (at once when one was delivered: the URL's next call may be waiting).
    async fn round(&self) -> Result<Duration, String> {
        let heads = self.conn.run(heads).await?;
        let now = crate::clock::now_ms();
        let (due, later): (Vec<Call>, Vec<Call>) =
            heads.into_iter().partition(|c| c.next_attempt_at <= now);
        let mut sends = tokio::task::JoinSet::new();
        for call in due {
            let http = self.http.clone();
            sends.spawn(async move {
                let outcome = send(&http, &call).await;
                (call, outcome)
            });
        }
        let mut delivered = false;
        let mut retries = Vec::new();
        while let Some(Ok((call, outcome))) = sends.join_next().await {
            delivered |= matches!(outcome, Outcome::Delivered);
            retries.extend(self.settle(call, outcome).await?);
        }
        let pending: i64 = self
            .conn
            .run(|c| c.query_row("SELECT count(*) FROM webhook_outbox", [], |r| r.get(0)))
            .await?;
        self.metrics.webhook_outbox.store(pending as u64, Relaxed);
        let next = (later.iter().map(|c| c.next_attempt_at))
            .chain(retries)
            .min();
        let now = crate::clock::now_ms();
        Ok(match (delivered, next) {
            (true, _) => Duration::ZERO,
            (false, Some(at)) => Duration::from_millis((at - now).clamp(0, 60_000) as u64),
            (false, None) => Duration::from_secs(60),
        })
    }

    /// Deletes a delivered call; schedules a failed one again (when, returned), or gives it up.
    async fn settle(&self, call: Call, outcome: Outcome) -> Result<Option<i64>, String> {
        let counts = self
            .metrics
            .rules()
            .get(call.rule)
            .and_then(|r| r.actions.get(call.action));
        // The action's counts (none when the configuration no longer has it).
        let count = |read: fn(&crate::metrics::ActionStatus) -> &std::sync::atomic::AtomicU64| {
            if let Some(c) = counts {
                read(c).fetch_add(1, Relaxed);
            }
        };
        let now = crate::clock::now_ms();
        let id = call.id;
        match outcome {
            Outcome::Delivered => {
                count(|c| &c.delivered);
                self.conn
                    .run(move |c| c.execute("DELETE FROM webhook_outbox WHERE id = ?1", [id]))
                    .await?;
            }
            Outcome::Failed(why) if now >= call.give_up_at => {
                count(|c| &c.given_up);
                count(|c| &c.failed);
                tracing::warn!(
                    "webhook {}: given up after {} tries: {why}",
                    call.url,
                    call.attempts + 1
                );
                self.conn
                    .run(move |c| c.execute("DELETE FROM webhook_outbox WHERE id = ?1", [id]))
                    .await?;
            }
            Outcome::Failed(why) => {
                count(|c| &c.failed);
                if call.attempts == 0 {
                    tracing::warn!("webhook {}: {why}; trying again", call.url);
                }
                let wait = (1000i64 << call.attempts.min(30)).min(call.retry_max_ms.max(1000));
                let next = now + wait;
                self.conn
                    .run(move |c| {
                        c.execute(
                        "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?2,
                                last_error = ?3 WHERE id = ?1",
                        (id, next, why),
                    )
                    })
                    .await?;
                return Ok(Some(next));
            }
        }
        Ok(None)
    }
}

/// The oldest call of each URL.
fn heads(conn: &Connection) -> rusqlite::Result<Vec<Call>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, rule, action, url, headers, body, give_up_at, timeout_ms, retry_max_ms,
                attempts, next_attempt_at
         FROM webhook_outbox WHERE id IN (SELECT min(id) FROM webhook_outbox GROUP BY url)",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Call {
            id: r.get(0)?,
            rule: r.get::<_, i64>(1)? as usize,
            action: r.get::<_, i64>(2)? as usize,
            url: r.get(3)?,
            headers: r.get(4)?,
            body: r.get(5)?,
            give_up_at: r.get(6)?,
            timeout_ms: r.get(7)?,
            retry_max_ms: r.get(8)?,
            attempts: r.get(9)?,
            next_attempt_at: r.get(10)?,
        })
    })?;
    rows.collect()
}

/// One POST of a call.
async fn send(http: &reqwest::Client, call: &Call) -> Outcome {
    let headers: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&call.headers).unwrap_or_default();
    let mut request = http
        .post(&call.url)
        .timeout(Duration::from_millis(call.timeout_ms.max(1) as u64))
        .header("content-type", "application/json")
        .header("x-edgemq-delivery", call.id.to_string())
        .body(call.body.clone());
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => Outcome::Delivered,
        Ok(response) => Outcome::Failed(format!("answered {}", response.status())),
        Err(e) if e.is_timeout() => Outcome::Failed("no answer in time".into()),
        Err(e) => Outcome::Failed(format!("{e}")),
    }
}
