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
    /// When edgemq received it (unix ms).
    pub received_at: i64,
    /// The client that published it (dead letters do not keep it).
    pub client_id: Option<String>,
    /// Published with the retain flag.
    pub retain: bool,
}

/// Where to read the log from for what was received at or after `at` (unix ms): an id such
/// that the messages before it arrived earlier and the ones from it on did not (past the last
/// one when none did). A binary search over ids, which follow arrival (to within the moment between a message's
/// arrival and its numbering).
pub fn first_id_at(conn: &Connection, at: i64) -> rusqlite::Result<i64> {
    let mut first = conn.prepare_cached(
        "SELECT id, received_at FROM messages WHERE id >= ?1 ORDER BY id LIMIT 1",
    )?;
    let mut at_or_after = |id: i64| -> rusqlite::Result<Option<(i64, i64)>> {
        let mut rows = first.query([id])?;
        rows.next()?.map(|r| Ok((r.get(0)?, r.get(1)?))).transpose()
    };
    let last: i64 = conn.query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
        r.get(0)
    })?;
    let (mut lo, mut hi) = (0i64, last + 1);
    // Invariant: messages before `lo` arrived before `at`; `hi` is at or after it.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match at_or_after(mid)? {
            Some((id, received_at)) if received_at < at => lo = (id + 1).min(hi),
            // No message between `mid` and `hi`: `mid` is as good a start as `hi`.
            Some((id, _)) => hi = if id < hi { id } else { mid },
            None => hi = mid,
        }
    }
    Ok(lo)
}

/// Every routed message with an id in `(after, through]`, in id order.
pub fn between(conn: &Connection, after: i64, through: i64) -> rusqlite::Result<Vec<Logged>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, topic, payload, coalesce(qos, 0), properties, received_at, client_id,
                coalesce(retain, 0) FROM messages
          WHERE id > ?1 AND id <= ?2 AND topic NOT LIKE '$%'
         UNION ALL
         SELECT id, topic, payload, coalesce(qos, 1), properties, received_at, client_id,
                coalesce(retain, 0) FROM dead_letters
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
            received_at: r.get(5)?,
            client_id: r.get(6)?,
            retain: r.get(7)?,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_id_at_a_time_is_found_across_gaps() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::store::SCHEMA).unwrap();
        for id in [1, 2, 3, 7, 8, 20, 21] {
            conn.execute(
                "INSERT INTO messages (id, received_at, topic, payload, device_time)
                 VALUES (?1, ?1 * 100, 't', x'00', 0)",
                [id],
            )
            .unwrap();
        }
        // The first message read from the id found (ids in a gap are as good as the next).
        let at = |t| {
            let from = first_id_at(&conn, t).unwrap();
            let next: Option<i64> = conn
                .query_row("SELECT min(id) FROM messages WHERE id >= ?1", [from], |r| {
                    r.get(0)
                })
                .unwrap();
            next
        };
        assert_eq!(at(0), Some(1));
        assert_eq!(at(300), Some(3));
        assert_eq!(at(301), Some(7), "the next one after a gap");
        assert_eq!(at(700), Some(7));
        assert_eq!(at(1_000), Some(20));
        assert_eq!(at(2_100), Some(21));
        assert_eq!(at(5_000), None, "past the last");
    }
}
