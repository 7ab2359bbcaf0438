//! Open alerts and how one is raised or cleared: an alert is kept open by device until its
//! condition ends; a raise and its clear in one batch become one row.

use crate::store::{Alert, AlertChange, Batch};
use rustc_hash::FxHashMap;
use serde_json::Value;

/// Open alerts by device; a device has few, so the rest is a short list.
#[derive(Default)]
pub struct OpenAlerts(FxHashMap<String, Vec<Alert>>);

impl OpenAlerts {
    pub fn position(&self, device: &str, alert_type: &str, metric: Option<&str>) -> Option<usize> {
        let alerts = self.0.get(device)?;
        alerts
            .iter()
            .position(|a| a.alert_type == alert_type && a.metric.as_deref() == metric)
    }

    pub fn contains(&self, device: &str, alert_type: &str, metric: Option<&str>) -> bool {
        self.position(device, alert_type, metric).is_some()
    }

    pub fn insert(&mut self, alert: Alert) {
        self.0
            .entry(alert.device_id.clone())
            .or_default()
            .push(alert);
    }

    pub fn remove(
        &mut self,
        device: &str,
        alert_type: &str,
        metric: Option<&str>,
    ) -> Option<Alert> {
        let at = self.position(device, alert_type, metric)?;
        let alerts = self.0.get_mut(device)?;
        let alert = alerts.swap_remove(at);
        if alerts.is_empty() {
            self.0.remove(device);
        }
        Some(alert)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Alert> {
        self.0.values().flatten()
    }
}

pub fn new_alert(
    next_id: &mut i64,
    device: &str,
    alert_type: &str,
    metric: Option<&str>,
    now: i64,
    payload: Value,
) -> Alert {
    let id = *next_id;
    *next_id += 1;
    Alert {
        id,
        device_id: device.to_string(),
        alert_type: alert_type.to_string(),
        metric: metric.map(str::to_string),
        value: None,
        threshold: None,
        raised_at: now,
        cleared_at: None,
        payload,
    }
}

/// Clears an open alert; the alert as cleared, if one was open.
pub fn clear(
    open: &mut OpenAlerts,
    device: &str,
    alert_type: &str,
    metric: Option<&str>,
    now: i64,
    batch: &mut Batch,
) -> Option<Alert> {
    let mut alert = open.remove(device, alert_type, metric)?;
    alert.cleared_at = Some(now);
    // A raise and its clear in the same batch become one row, written once.
    for change in batch.alerts.iter_mut().rev() {
        if let AlertChange::Raised(raised) = change {
            if raised.id == alert.id {
                raised.cleared_at = Some(now);
                return Some(alert);
            }
        }
    }
    batch.alerts.push(AlertChange::Cleared(alert.clone()));
    Some(alert)
}
