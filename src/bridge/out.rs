//! The `out` direction of one bridge: connect upstream (the addresses in order, moving on when
//! one fails, and back to the first when it answers again unless `round_robin`), then read the log after the cursor in pages and publish what the `out` topics
//! match, with the remote prefix, at most 1,000 unacknowledged. The cursor is the last id before
//! the oldest unacknowledged message; it is saved every 100 ms while it moves and when the
//! connection ends, and a new connection starts from it, so what was in flight is sent again
//! (after `kill -9`, what was acknowledged in the last 100 ms too).

use super::cursor::Cursor;
use super::inbound::Inbound;
use super::upstream::{self, Client, Events, Happened};
use super::window::Window;
use super::{BridgeSection, Context};
use crate::metrics::BridgeStatus;
use crate::query::log::{self, Logged};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Ids read from the log per page.
const PAGE_IDS: i64 = 1_000;
/// Messages taken for publishing and not yet acknowledged, at most.
const WINDOW: usize = 1_000;
/// How often the cursor is saved while it moves.
const SAVE_EVERY: Duration = Duration::from_millis(100);
/// How often a bridge away from its primary address checks it (Mosquitto's 5 seconds).
const PRIMARY_CHECK: Duration = Duration::from_secs(5);

type Page = Pin<Box<dyn Future<Output = (Result<Vec<Logged>, String>, i64)> + Send>>;
type Probe = Pin<Box<dyn Future<Output = bool> + Send>>;

/// How a connection ended, and the cursor then.
enum Ended {
    Stopped(i64),
    Lost(i64, String),
    /// The primary address answers again: the bridge goes back to it.
    BackToPrimary(i64),
}

/// One bridge: its configuration, its state for everyone to see, its cursor.
struct Bridge {
    config: BridgeSection,
    status: Arc<BridgeStatus>,
    cursor: Cursor,
}

pub async fn run(config: BridgeSection, status: Arc<BridgeStatus>, mut context: Context) {
    let name = config.name.clone();
    let head = *context.committed.borrow();
    let cursor = match Cursor::open(&context.database, &name) {
        Ok(cursor) => cursor,
        Err(e) => return tracing::error!("bridge {name}: cannot open its cursor: {e}"),
    };
    let mut acked_through = match cursor.load().await {
        Ok(Some(saved)) => saved,
        // A new bridge forwards what comes from now on.
        Ok(None) => head,
        Err(e) => return tracing::error!("bridge {name}: cannot read its cursor: {e}"),
    };
    cursor.save(acked_through).await;
    let bridge = Bridge {
        config,
        status,
        cursor,
    };
    bridge.notify_local(false, &context).await;
    let mut address = 0;
    loop {
        bridge.status.acked_through.store(acked_through, Relaxed);
        let addresses = &bridge.config.addresses;
        let at = &addresses[address % addresses.len()];
        *bridge
            .status
            .address
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = at.clone();
        // Away from the primary address (and not round robin): it is checked meanwhile.
        let primary = (!bridge.config.round_robin && address % addresses.len() != 0)
            .then(|| addresses[0].clone());
        match bridge
            .connection((at, primary), acked_through, &mut context)
            .await
        {
            Ended::Stopped(through) => {
                bridge.cursor.save(through).await;
                return;
            }
            Ended::BackToPrimary(through) => {
                acked_through = through;
                bridge.cursor.save(through).await;
                tracing::info!(
                    "bridge {name}: {} answers again: going back to it",
                    addresses[0]
                );
                address = 0;
                continue;
            }
            Ended::Lost(through, why) => {
                acked_through = through;
                bridge.cursor.save(through).await;
                bridge.status.failed(&why);
                tracing::warn!(
                    "bridge {name}: {at}: {why}; trying again in {:?}",
                    bridge.config.restart_timeout
                );
                address += 1;
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(bridge.config.restart_timeout) => {}
            _ = context.stopping.wait() => return,
        }
    }
}

impl Bridge {
    /// The notification topic upstream, unless notifications are off or local only.
    fn remote_notification(&self) -> Option<String> {
        (!self.config.notifications_local_only)
            .then(|| self.status.notification_topic.clone())
            .flatten()
    }

    /// Connected or not, for everyone to see: the status (and with it `$SYS`), or a retained
    /// message on a `notification_topic` outside `$SYS`.
    async fn notify_local(&self, connected: bool, context: &Context) {
        self.status.connected.store(connected, Relaxed);
        context.metrics.sys_changed.notify_one();
        let Some(topic) = &self.status.notification_topic else {
            return;
        };
        if !topic.starts_with("$SYS/") {
            let payload = if connected { "1" } else { "0" };
            let local = self.config.local_client_id();
            super::inbound::publish_retained(topic, payload, &local, context).await;
        }
    }

    async fn connection(
        &self,
        (address, primary): (&str, Option<String>),
        acked_through: i64,
        context: &mut Context,
    ) -> Ended {
        let name = &self.config.name;
        let will = self.remote_notification().map(|topic| (topic, "0"));
        let (client, mut events) = match upstream::connect(&self.config, address, will).await {
            Ok(connected) => connected,
            Err(why) => return Ended::Lost(acked_through, why),
        };
        tracing::info!("bridge {name}: connected to {address}");
        let mut window = Window::starting_after(acked_through);
        if let Some(topic) = self.remote_notification() {
            if client.try_publish(&topic, 1, true, b"1") {
                window.handed(None, 1);
            }
        }
        Inbound::subscribe(&self.config, &client);
        self.notify_local(true, context).await;
        let ended = self
            .forward((&client, &mut events), window, primary, context)
            .await;
        self.notify_local(false, context).await;
        if let Ended::Stopped(_) = ended {
            if let Some(topic) = self.remote_notification() {
                client.try_publish(&topic, 1, true, b"0");
            }
            client.disconnect();
            // Let the notification and the DISCONNECT go out.
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while events.poll().await.is_ok() {}
            })
            .await;
        }
        ended
    }

    async fn forward(
        &self,
        (client, events): (&Client, &mut Events),
        mut window: Window,
        primary: Option<String>,
        context: &mut Context,
    ) -> Ended {
        let (bridge, status) = (&self.config, &self.status);
        let mut inbound = Inbound::new(bridge, status.clone());
        let mut page: Option<Page> = None;
        let mut saved_at = Instant::now();
        let mut saved = window.read_through;
        let (mut second, mut sent_this_second) = (Instant::now(), 0u32);
        let mut probe_at = Instant::now() + PRIMARY_CHECK;
        let mut probe: Option<Probe> = None;
        loop {
            // Hand the client what the rate allows.
            if second.elapsed() >= Duration::from_secs(1) {
                (second, sent_this_second) = (Instant::now(), 0);
            }
            while bridge.max_rate == 0 || sent_this_second < bridge.max_rate {
                let Some(next) = window.to_send.front() else {
                    break;
                };
                if !client.try_publish(&next.topic, next.qos, next.retain, &next.payload) {
                    break;
                }
                let (id, qos) = (next.id, next.qos);
                window.to_send.pop_front();
                window.handed(Some(id), qos);
                sent_this_second += 1;
            }
            let committed = *context.committed.borrow();
            if page.is_none() && window.pending() < WINDOW && committed > window.read_through {
                let after = window.read_through;
                let through = committed.min(after + PAGE_IDS);
                let db = context.log.clone();
                page = Some(Box::pin(async move {
                    let rows = db.run(move |conn| log::between(conn, after, through)).await;
                    (rows.map_err(|e| e.to_string()), through)
                }));
            }
            let rate_wait = (bridge.max_rate > 0
                && sent_this_second >= bridge.max_rate
                && !window.to_send.is_empty())
            .then(|| second + Duration::from_secs(1));
            tokio::select! {
                event = events.poll() => match event {
                    Ok(Happened::Sent(pkid)) => {
                        if window.sent(pkid) {
                            status.forwarded.fetch_add(1, Relaxed);
                            window.acked_through();
                        }
                    }
                    Ok(Happened::Message(received)) => {
                        inbound.take(bridge, received, context).await;
                        inbound.acknowledge(client);
                    }
                    Ok(Happened::Acked(pkid, refused)) => {
                        if window.acknowledged(pkid) {
                            match refused {
                                // Sending it again would be refused again: counted, passed.
                                Some(why) => {
                                    status.refused.fetch_add(1, Relaxed);
                                    tracing::warn!("bridge {}: the upstream refused a message: {why}", bridge.name);
                                }
                                None => { status.forwarded.fetch_add(1, Relaxed); }
                            }
                            // Acknowledged ones leave the window, making room for the next page.
                            window.acked_through();
                        }
                    }
                    Ok(Happened::Other) => {}
                    Err(e) => return Ended::Lost(window.acked_through(), format!("connection lost: {e}")),
                },
                (rows, through) = async { page.as_mut().expect("guarded").await }, if page.is_some() => {
                    page = None;
                    match rows {
                        Ok(rows) => window.take(bridge, rows, through),
                        Err(e) => {
                            tracing::warn!("bridge {}: reading the log: {e}", bridge.name);
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
                _ = context.committed.changed() => {}
                _ = inbound.changed(), if inbound.waiting() => inbound.acknowledge(client),
                _ = tokio::time::sleep_until(rate_wait.unwrap_or_else(Instant::now)), if rate_wait.is_some() => {}
                _ = tokio::time::sleep_until(saved_at + SAVE_EVERY) => {
                    let through = window.acked_through();
                    status.acked_through.store(through, Relaxed);
                    if through != saved {
                        self.cursor.save(through).await;
                        saved = through;
                    }
                    saved_at = Instant::now();
                }
                _ = tokio::time::sleep_until(probe_at), if primary.is_some() && probe.is_none() => {
                    probe = primary.clone().map(answers);
                }
                up = async { probe.as_mut().expect("guarded").await }, if probe.is_some() => {
                    probe = None;
                    if up {
                        return Ended::BackToPrimary(window.acked_through());
                    }
                    probe_at = Instant::now() + PRIMARY_CHECK;
                }
                _ = context.stopping.wait() => return Ended::Stopped(window.acked_through()),
            }
        }
    }
}

/// Whether something accepts a TCP connection at `address` within 2 seconds.
fn answers(address: String) -> Probe {
    Box::pin(async move {
        let connect = tokio::net::TcpStream::connect(address);
        matches!(
            tokio::time::timeout(Duration::from_secs(2), connect).await,
            Ok(Ok(_))
        )
    })
}
