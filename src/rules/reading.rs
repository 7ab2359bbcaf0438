//! What the rules see of a message that passed decoding: the record, its JSON fields, and the
//! change to the device it says it makes. Ingest's decoder fills it in; rules only read it.

use crate::store::Record;
use serde_json::{Map, Value};

/// One decoded message, as the rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Reading<'a> {
    pub record: &'a Record,
    /// Its JSON object's fields, when it is one.
    pub fields: Option<&'a Map<String, Value>>,
    pub effect: Option<&'a Effect>,
}

/// A change to a device's registry entry or current state that a message carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The device says it is online or offline (seed 001 status, last wills).
    Presence {
        online: bool,
        ip_address: Option<String>,
        firmware_version: Option<String>,
        uptime: Option<i64>,
    },
    /// A named piece of current state: `relay/0` = `true`, `eb` = `ON`.
    State { name: String, value: String },
}
