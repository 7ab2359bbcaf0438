//! `/api/v1/messages`: a page of messages, newest first, by topic filter, device and arrival
//! time. Each shape of query walks an index in that index's order, so a page costs about
//! `limit` rows however long the history is:
//! - a device, or an exact topic only one device publishes on: the device index, newest by the
//!   device's own time;
//! - an exact topic without devices: the topic index, newest by arrival;
//! - a wildcard or no topic: the table, newest by id, examining at most `SCAN_LIMIT` rows a page;
//! - an exact topic several devices (or devices and device-less messages) share: both indexes,
//!   merged and sorted by id.
//!
//! The cursor says where the previous page ended, in its query's order.

use super::native::{message, Page};
use crate::topic;
use rusqlite::{params, Connection, OptionalExtension};

/// What a message list is narrowed to.
pub struct MessageFilter<'a> {
    /// MQTT topic filter; wildcards allowed.
    pub topic: Option<&'a str>,
    pub device_id: Option<&'a str>,
    /// Arrival time range, unix milliseconds.
    pub from_ms: i64,
    pub to_ms: i64,
    /// `next_cursor` of the previous page.
    pub cursor: Option<&'a str>,
    pub limit: u32,
}

/// Rows a device or wildcard query examines per page before it returns what it found.
const SCAN_LIMIT: usize = 50_000;

const COLUMNS: &str =
    "id, received_at, topic, payload, device_id, kind, device_time, client_id, username, qos, retain";

/// Where a page ended: an id, or a time (the device's or arrival) and an id.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cursor {
    Id(i64),
    At(i64, i64),
}

impl Cursor {
    fn parse(text: &str) -> Option<Cursor> {
        match text.split_once('_') {
            None => text.parse().ok().map(Cursor::Id),
            Some((t, id)) => Some(Cursor::At(t.parse().ok()?, id.parse().ok()?)),
        }
    }

    /// The (time, id) to continue below; `None` for a cursor of another query shape.
    fn position(cursor: Option<Cursor>) -> Option<(i64, i64)> {
        match cursor {
            None => Some((i64::MAX, i64::MAX)),
            Some(Cursor::At(t, id)) => Some((t, id)),
            Some(Cursor::Id(_)) => None,
        }
    }

    /// The id to continue below; `None` for a cursor of another query shape.
    fn before_id(cursor: Option<Cursor>) -> Option<i64> {
        match cursor {
            None => Some(i64::MAX),
            Some(Cursor::Id(id)) => Some(id),
            Some(Cursor::At(..)) => None,
        }
    }

    fn text(self) -> String {
        match self {
            Cursor::Id(id) => id.to_string(),
            Cursor::At(t, id) => format!("{t}_{id}"),
        }
    }
}

/// The page, or why the cursor cannot be used (a message for the client).
pub fn messages(conn: &Connection, f: &MessageFilter) -> rusqlite::Result<Result<Page, String>> {
    let cursor = match f.cursor.map(|c| (c, Cursor::parse(c))) {
        None => None,
        Some((_, Some(c))) => Some(c),
        Some((text, None)) => {
            return Ok(Err(format!(
                "`cursor` must be a value from `next_cursor`, got `{text}`"
            )))
        }
    };
    let exact = f.topic.filter(|t| !t.contains('+') && !t.contains('#'));
    let page = match (f.device_id, exact) {
        (Some(device), _) => by_device(conn, f, device, cursor),
        (None, Some(t)) => {
            let mut devices = conn
                .prepare_cached("SELECT device_id FROM topic_devices WHERE topic = ?1 LIMIT 2")?;
            let devices: Vec<String> = devices
                .query_map([t], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            let unrouted = conn
                .prepare_cached(
                    "SELECT 1 FROM messages WHERE topic = ?1 AND device_id IS NULL LIMIT 1",
                )?
                .query_row([t], |_| Ok(()))
                .optional()?
                .is_some();
            match (devices.as_slice(), unrouted) {
                ([], _) => by_arrival(conn, f, t, cursor),
                ([device], false) => by_device(conn, f, device, cursor),
                _ => merged(conn, f, t, cursor),
            }
        }
        (None, None) => scan(conn, f, cursor),
    }?;
    Ok(page.ok_or_else(|| {
        "`cursor` belongs to a query of another shape (the data changed between pages); \
         start again without it"
            .to_string()
    }))
}

/// A device's messages by its own time (index order), filtered here by arrival and topic.
fn by_device(
    conn: &Connection,
    f: &MessageFilter,
    device: &str,
    cursor: Option<Cursor>,
) -> rusqlite::Result<Option<Page>> {
    let Some((time, before)) = Cursor::position(cursor) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM messages WHERE device_id = ?1 AND (device_time, id) < (?2, ?3)
         ORDER BY device_time DESC, id DESC"
    ))?;
    let rows = stmt.query(params![device, time, before])?;
    let wanted = |row: &rusqlite::Row| -> rusqlite::Result<bool> {
        let received_at: i64 = row.get(1)?;
        Ok((f.from_ms..=f.to_ms).contains(&received_at) && on_topic(f, row)?)
    };
    collect(rows, f.limit, wanted, |row| {
        Ok(Cursor::At(row.get(6)?, row.get(0)?))
    })
    .map(Some)
}

/// Device-less messages on one topic by arrival (index order, time range in the index).
fn by_arrival(
    conn: &Connection,
    f: &MessageFilter,
    topic: &str,
    cursor: Option<Cursor>,
) -> rusqlite::Result<Option<Page>> {
    let Some((time, before)) = Cursor::position(cursor) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM messages
         WHERE topic = ?1 AND device_id IS NULL AND received_at >= ?2 AND received_at <= ?3
           AND (received_at, id) < (?4, ?5)
         ORDER BY received_at DESC, id DESC"
    ))?;
    let rows = stmt.query(params![topic, f.from_ms, f.to_ms, time, before])?;
    collect(
        rows,
        f.limit,
        |_| Ok(true),
        |row| Ok(Cursor::At(row.get(1)?, row.get(0)?)),
    )
    .map(Some)
}

/// One topic shared by several devices, or by devices and device-less messages: by id.
fn merged(
    conn: &Connection,
    f: &MessageFilter,
    topic: &str,
    cursor: Option<Cursor>,
) -> rusqlite::Result<Option<Page>> {
    let Some(before) = Cursor::before_id(cursor) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM messages
         WHERE topic = ?1 AND device_id IS NULL AND received_at >= ?2 AND received_at <= ?3 AND id < ?4
         UNION ALL
         SELECT {COLUMNS} FROM messages
         WHERE device_id IN (SELECT device_id FROM topic_devices WHERE topic = ?1) AND topic = ?1
           AND received_at >= ?2 AND received_at <= ?3 AND id < ?4
         ORDER BY id DESC"
    ))?;
    let rows = stmt.query(params![topic, f.from_ms, f.to_ms, before])?;
    collect(
        rows,
        f.limit,
        |_| Ok(true),
        |row| Ok(Cursor::Id(row.get(0)?)),
    )
    .map(Some)
}

/// Every message, or a wildcard filter checked here: newest by id.
fn scan(
    conn: &Connection,
    f: &MessageFilter,
    cursor: Option<Cursor>,
) -> rusqlite::Result<Option<Page>> {
    let Some(before) = Cursor::before_id(cursor) else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM messages WHERE received_at >= ?1 AND received_at <= ?2 AND id < ?3
         ORDER BY id DESC"
    ))?;
    let rows = stmt.query(params![f.from_ms, f.to_ms, before])?;
    collect(
        rows,
        f.limit,
        |row| on_topic(f, row),
        |row| Ok(Cursor::Id(row.get(0)?)),
    )
    .map(Some)
}

/// Whether a row's topic matches the filter's (any topic when there is none).
fn on_topic(f: &MessageFilter, row: &rusqlite::Row) -> rusqlite::Result<bool> {
    match f.topic {
        None => Ok(true),
        Some(filter) => Ok(topic::matches(filter, &row.get::<_, String>(2)?)),
    }
}

/// Takes rows in order until `limit` are wanted (the cursor: the last one) or `SCAN_LIMIT`
/// were examined (the cursor: the last examined, so the next page goes on from there).
fn collect(
    mut rows: rusqlite::Rows,
    limit: u32,
    wanted: impl Fn(&rusqlite::Row) -> rusqlite::Result<bool>,
    position: impl Fn(&rusqlite::Row) -> rusqlite::Result<Cursor>,
) -> rusqlite::Result<Page> {
    let mut items = Vec::new();
    let mut examined = 0;
    while let Some(row) = rows.next()? {
        examined += 1;
        if wanted(row)? {
            items.push(message(row)?);
            if items.len() == limit as usize {
                let next_cursor = Some(position(row)?.text());
                return Ok(Page { items, next_cursor });
            }
        }
        if examined >= SCAN_LIMIT {
            let next_cursor = Some(position(row)?.text());
            return Ok(Page { items, next_cursor });
        }
    }
    Ok(Page {
        items,
        next_cursor: None,
    })
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn cursors_read_back_what_they_wrote() {
        for c in [
            Cursor::Id(42),
            Cursor::At(1_795_400_000_000, 7),
            Cursor::At(-5, 1),
        ] {
            assert_eq!(Cursor::parse(&c.text()), Some(c));
        }
        assert_eq!(Cursor::parse("x_1"), None);
        assert_eq!(Cursor::parse("1.5"), None);
    }
}
