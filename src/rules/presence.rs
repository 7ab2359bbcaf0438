//! Presence: which devices are online. A device on a route with `offline_after` goes OFFLINE
//! after that much silence; any message brings it back; a device may also say it is offline
//! (seed 001's status, including its last will).

use crate::store::{Batch, DeviceChange};
use rustc_hash::FxHashMap;

struct Device {
    last_seen: i64,
    online: bool,
    /// When it went offline, for the ONLINE alert.
    offline_since: i64,
    offline_after: Option<i64>,
}

pub enum Transition {
    WentOffline { last_seen: i64 },
    CameBack { offline_since: i64 },
}

#[derive(Default)]
pub struct Presence {
    devices: FxHashMap<String, Device>,
}

impl Presence {
    /// From the registry: (device_id, last_seen, is_online, last_topic).
    pub fn load(
        rows: Vec<(String, i64, bool, Option<String>)>,
        offline_after: impl Fn(&str) -> Option<i64>,
    ) -> Presence {
        let devices = rows
            .into_iter()
            .map(|(id, last_seen, online, topic)| {
                let offline_after = topic.as_deref().and_then(&offline_after);
                let device = Device {
                    last_seen,
                    online,
                    offline_since: last_seen,
                    offline_after,
                };
                (id, device)
            })
            .collect();
        Presence { devices }
    }

    /// Records a message from `device`; `online` is false when the message says it is offline.
    pub fn seen(
        &mut self,
        device: &str,
        now: i64,
        offline_after: Option<i64>,
        online: bool,
        batch: &mut Batch,
    ) -> Option<Transition> {
        let Some(d) = self.devices.get_mut(device) else {
            self.devices.insert(
                device.to_string(),
                Device {
                    last_seen: now,
                    online,
                    offline_since: now,
                    offline_after,
                },
            );
            if online {
                return None;
            }
            push_online(batch, device, false);
            return Some(Transition::WentOffline { last_seen: now });
        };
        let previous = d.last_seen;
        d.last_seen = now.max(d.last_seen);
        if offline_after.is_some() {
            d.offline_after = offline_after;
        }
        match (d.online, online) {
            (false, true) => {
                d.online = true;
                push_online(batch, device, true);
                Some(Transition::CameBack {
                    offline_since: d.offline_since,
                })
            }
            (true, false) => {
                d.online = false;
                d.offline_since = now;
                push_online(batch, device, false);
                Some(Transition::WentOffline {
                    last_seen: previous,
                })
            }
            _ => None,
        }
    }

    /// Registry details a device reported about itself.
    pub fn info(
        &mut self,
        device: &str,
        ip: &Option<String>,
        firmware: &Option<String>,
        uptime: Option<i64>,
        batch: &mut Batch,
    ) {
        batch.devices.push(DeviceChange {
            device_id: device.to_string(),
            online: None,
            ip_address: ip.clone(),
            firmware_version: firmware.clone(),
            uptime,
        });
    }

    /// Marks offline every online device silent longer than it may be; returns them with
    /// their last_seen.
    pub fn expire(&mut self, now: i64, batch: &mut Batch) -> Vec<(String, i64)> {
        let mut gone = Vec::new();
        for (id, d) in &mut self.devices {
            let Some(limit) = d.offline_after else {
                continue;
            };
            if d.online && now - d.last_seen > limit {
                d.online = false;
                d.offline_since = now;
                gone.push((id.clone(), d.last_seen));
            }
        }
        for (id, _) in &gone {
            push_online(batch, id, false);
        }
        gone
    }
}

fn push_online(batch: &mut Batch, device: &str, online: bool) {
    batch.devices.push(DeviceChange {
        device_id: device.to_string(),
        online: Some(online),
        ..Default::default()
    });
}
