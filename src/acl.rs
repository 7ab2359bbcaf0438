//! Who may publish to and read which topics. With `[auth] acl_file`, Mosquitto's format,
//! read as Mosquitto reads it: `user NAME` starts a user's block (lines before the first are
//! the anonymous clients'), `topic [read|write|readwrite|deny] FILTER` adds to the current
//! block, `pattern [...] FILTER` applies to every client with `%c` (client id) and `%u`
//! (username) as whole levels; deny lines are checked first, and nothing is allowed that no
//! line allows. With logins on and no `acl_file`, the built-in rule keeps request/response
//! replies private: a reply topic (each `[[rpc]]` reply) is read only by the client whose id or
//! username is its `{client_id}` level, and published to by no client. Otherwise all is open.

use crate::topic;
use std::collections::HashMap;
use std::path::Path;

/// What a client wants to do with a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive messages on it (and subscribe to it).
    Read = 1,
    /// Publish to it.
    Write = 2,
}

/// The client asking.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
}

/// One `topic` or `pattern` line: its filter and the access it gives (0: deny).
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    filter: String,
    access: u8,
}

/// An `acl_file`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AclFile {
    anonymous: Vec<Entry>,
    users: HashMap<String, Vec<Entry>>,
    patterns: Vec<Entry>,
}

/// A reply topic of `[[rpc]]`: its filter (`{client_id}` as `+`) and which level is the client.
#[derive(Debug, Clone, PartialEq)]
pub struct PrivateReply {
    filter: String,
    level: usize,
}

/// The rules in force.
#[derive(Debug, Clone, PartialEq)]
pub enum Acl {
    Open,
    PrivateReplies(Vec<PrivateReply>),
    File(AclFile),
}

impl Acl {
    /// The rules for these settings: the `acl_file` if one is given; else, when logins are
    /// on, private replies to these `[[rpc]]` reply templates; else open.
    pub fn new(acl_file: Option<&Path>, logins_on: bool, replies: &[&str]) -> Result<Acl, String> {
        if let Some(path) = acl_file {
            return AclFile::load(path).map(Acl::File);
        }
        if !logins_on {
            return Ok(Acl::Open);
        }
        let private = replies
            .iter()
            .filter_map(|r| PrivateReply::new(r))
            .collect();
        Ok(Acl::PrivateReplies(private))
    }

    pub fn is_open(&self) -> bool {
        matches!(self, Acl::Open)
    }

    /// Whether `who` may do `access` on `topic`.
    pub fn allows(&self, who: Who, topic: &str, access: Access) -> bool {
        match self {
            Acl::Open => true,
            Acl::PrivateReplies(replies) => match replies.iter().find(|r| r.holds(topic)) {
                Some(reply) => access == Access::Read && reply.is_for(who, topic),
                None => true,
            },
            Acl::File(file) => file.allows(who, topic, access),
        }
    }

    /// Whether some topic matching `filter` may be read by `who` (else a SUBSCRIBE to it is
    /// refused: 0x87).
    pub fn may_ever_read(&self, who: Who, filter: &str) -> bool {
        match self {
            Acl::Open => true,
            Acl::PrivateReplies(replies) => !replies.iter().any(|r| r.excludes(who, filter)),
            Acl::File(file) => file.may_ever_read(who, filter),
        }
    }
}

impl PrivateReply {
    /// From a reply template such as `home/datatemp/{client_id}`.
    fn new(template: &str) -> Option<PrivateReply> {
        let levels: Vec<&str> = template.split('/').collect();
        let level = levels.iter().position(|l| *l == "{client_id}")?;
        let filter = template.replace("{client_id}", "+");
        Some(PrivateReply { filter, level })
    }

    fn holds(&self, topic: &str) -> bool {
        topic::matches(&self.filter, topic)
    }

    /// Whether the reply topic `topic` is `who`'s.
    fn is_for(&self, who: Who, topic: &str) -> bool {
        let owner = topic.split('/').nth(self.level);
        owner == Some(who.client_id) || (owner.is_some() && owner == who.username)
    }

    /// Whether every topic `filter` matches is a reply for someone other than `who` (its
    /// client level is a name, and not theirs).
    fn excludes(&self, who: Who, filter: &str) -> bool {
        let named = filter.split('/').nth(self.level).is_some_and(|l| l != "+");
        covered(filter, &self.filter) && named && !self.is_for(who, filter)
    }
}

impl AclFile {
    /// Reads an `acl_file`; an error names the file and line.
    pub fn load(path: &Path) -> Result<AclFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        AclFile::parse(&text).map_err(|(line, why)| format!("{}:{line}: {why}", path.display()))
    }

    fn parse(text: &str) -> Result<AclFile, (usize, String)> {
        let mut file = AclFile::default();
        let mut user: Option<String> = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.starts_with('#') {
                continue;
            }
            let mut words = line.splitn(2, ' ');
            let (keyword, rest) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            let rest = rest.trim();
            match keyword {
                "topic" | "pattern" => {
                    let entry = entry(rest).map_err(|why| (n + 1, why))?;
                    let list = match (keyword, &user) {
                        ("pattern", _) => &mut file.patterns,
                        (_, Some(name)) => file.users.entry(name.clone()).or_default(),
                        (_, None) => &mut file.anonymous,
                    };
                    // Deny lines are checked first.
                    match entry.access {
                        0 => list.insert(0, entry),
                        _ => list.push(entry),
                    }
                }
                "user" if rest.is_empty() => return Err((n + 1, "user: a username".into())),
                "user" => user = Some(rest.to_string()),
                "" => {}
                other => {
                    return Err((
                        n + 1,
                        format!("`{other}`: not an acl_file line (user, topic, pattern)"),
                    ))
                }
            }
        }
        Ok(file)
    }

    /// The lines of `who`'s user block (anonymous clients: those before the first `user`).
    fn own(&self, who: Who) -> Option<&Vec<Entry>> {
        match who.username {
            Some(name) => self.users.get(name),
            None => Some(&self.anonymous),
        }
    }

    fn allows(&self, who: Who, topic: &str, access: Access) -> bool {
        let own = self.own(who);
        for e in own.into_iter().flatten() {
            if topic::matches(&e.filter, topic) {
                if e.access == 0 {
                    return false;
                }
                if e.access & access as u8 != 0 {
                    return true;
                }
            }
        }
        // A client id or username holding a wildcard could reach others' places.
        let dangerous = |s: &str| s.contains(['+', '#']);
        if self.patterns.is_empty()
            || dangerous(who.client_id)
            || who.username.is_some_and(dangerous)
        {
            return false;
        }
        for p in &self.patterns {
            let Some(filter) = substituted(&p.filter, who) else {
                continue;
            };
            if topic::matches(&filter, topic) {
                if p.access == 0 {
                    return false;
                }
                if p.access & access as u8 != 0 {
                    return true;
                }
            }
        }
        false
    }

    fn may_ever_read(&self, who: Who, filter: &str) -> bool {
        let own = self.own(who);
        let readable = |e: &&Entry| e.access & Access::Read as u8 != 0;
        let mine = own.into_iter().flatten().filter(readable);
        let patterns = self.patterns.iter().filter(readable);
        mine.map(|e| Some(e.filter.clone()))
            .chain(patterns.map(|p| substituted(&p.filter, who)))
            .flatten()
            .any(|allowed| intersect(&allowed, filter))
    }
}

/// A `topic`/`pattern` line after its keyword: `[ACCESS] FILTER`; a single word is the filter,
/// read and write (as Mosquitto reads it).
fn entry(rest: &str) -> Result<Entry, String> {
    let both = Access::Read as u8 | Access::Write as u8;
    let (access, filter) = match rest.split_once(' ') {
        None => (both, rest),
        Some((access, filter)) => {
            let access = match access {
                "read" => Access::Read as u8,
                "write" => Access::Write as u8,
                "readwrite" => both,
                "deny" => 0,
                other => return Err(format!("`{other}`: not read, write, readwrite or deny")),
            };
            (access, filter.trim())
        }
    };
    if !topic::valid_filter(filter) {
        return Err(format!("`{filter}`: not a valid topic filter"));
    }
    Ok(Entry {
        filter: filter.to_string(),
        access,
    })
}

/// A pattern with `%c` and `%u` levels replaced by the client's id and username; None when it
/// names the username and the client has none.
fn substituted(pattern: &str, who: Who) -> Option<String> {
    let levels: Option<Vec<&str>> = pattern
        .split('/')
        .map(|level| match level {
            "%c" => Some(who.client_id),
            "%u" => who.username,
            other => Some(other),
        })
        .collect();
    levels.map(|l| l.join("/"))
}

/// Whether some topic matches both filters.
fn intersect(a: &str, b: &str) -> bool {
    let dollar = |f: &str| f.starts_with('$');
    let wild = |f: &str| f.starts_with('+') || f.starts_with('#');
    if (dollar(a) && wild(b)) || (dollar(b) && wild(a)) {
        return false;
    }
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    levels_intersect(&a, &b)
}

fn levels_intersect(a: &[&str], b: &[&str]) -> bool {
    match (a.first(), b.first()) {
        (Some(&"#"), _) | (_, Some(&"#")) | (None, None) => true,
        (Some(x), Some(y)) => {
            (*x == "+" || *y == "+" || x == y) && levels_intersect(&a[1..], &b[1..])
        }
        _ => false,
    }
}

/// Whether every topic `filter` matches also matches `wider`.
fn covered(filter: &str, wider: &str) -> bool {
    let (f, w): (Vec<&str>, Vec<&str>) = (filter.split('/').collect(), wider.split('/').collect());
    let mut i = 0;
    loop {
        match (f.get(i), w.get(i)) {
            (_, Some(&"#")) => return true,
            (None, None) => return true,
            (Some(&"#"), _) => return false,
            (Some(&"+"), Some(&"+")) => {}
            (Some(x), Some(y)) if *x != "+" && (*y == "+" || x == y) => {}
            _ => return false,
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests;
