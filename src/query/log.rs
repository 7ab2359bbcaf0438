//! The log of everything received, read in id order: what a session that fell behind catches
//! up from. Messages and dead letters share one id sequence; topics starting with `$` were
//! never routed and are left out.

use crate::store::properties;
use rumqttd::protocol::PublishProperties;
use rusqlite::Connection;

/// One message of the log, as a subscriber gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub id: i64,
    pub topic: String,
    pub payload: Vec<u8>,
    /// The QoS it was published with (dead letters kept before it was recorded: 1).
    pub qos: u8,
    /// Its MQTT 5 properties, as published.
    pub properties: Option<PublishProperties>,
}

/// Every routed message with an id in `(after, through]`, in id order.
pub fn between(conn: &Connection, after: i64, through: i64) -> rusqlite::Result<Vec<Logged>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, topic, payload, coalesce(qos, 0), properties FROM messages
          WHERE id > ?1 AND id <= ?2 AND topic NOT LIKE '$%'
         UNION ALL
         SELECT id, topic, payload, coalesce(qos, 1), properties FROM dead_letters
          WHERE id > ?1 AND id <= ?2 AND topic NOT LIKE '$%'
         ORDER BY 1",
    )?;
    let rows = stmt.query_map((after, through), |r| {
        Ok(Logged {
            id: r.get(0)?,
            topic: r.get(1)?,
            payload: r.get(2)?,
            qos: r.get(3)?,
            properties: properties::from_column(r.get::<_, Option<String>>(4)?.as_deref()),
        })
    })?;
    rows.collect()
}
