//! The acl_file read as Mosquitto reads it, and the built-in private replies.

use super::*;

const ALICE: Who = Who {
    client_id: "phone-1",
    username: Some("alice"),
};
const ANON: Who = Who {
    client_id: "sensor-9",
    username: None,
};

fn file(text: &str) -> Acl {
    Acl::File(AclFile::parse(text).unwrap())
}

#[test]
fn users_anonymous_and_patterns_as_in_mosquitto() {
    let acl = file(
        "# anonymous clients\n\
         topic read public/#\n\
         \n\
         user alice\n\
         topic readwrite home/#\n\
         topic deny home/secret\n\
         topic write cmd/+\n\
         pattern write devices/%c/out\n\
         pattern read users/%u/#\n",
    );
    use Access::*;
    assert!(acl.allows(ANON, "public/news", Read));
    assert!(!acl.allows(ANON, "public/news", Write));
    assert!(!acl.allows(ANON, "home/x", Read));
    assert!(acl.allows(ALICE, "home/x", Write));
    assert!(!acl.allows(ALICE, "home/secret", Read), "deny first");
    assert!(acl.allows(ALICE, "cmd/a", Write) && !acl.allows(ALICE, "cmd/a", Read));
    // Patterns apply to every client, with their own id and username.
    assert!(acl.allows(ANON, "devices/sensor-9/out", Write));
    assert!(!acl.allows(ANON, "devices/phone-1/out", Write));
    assert!(acl.allows(ALICE, "users/alice/inbox", Read));
    assert!(
        !acl.allows(ANON, "users/alice/inbox", Read),
        "%u needs a username"
    );
    // `#` does not reach `$` topics.
    assert!(!acl.allows(ALICE, "$SYS/broker/uptime", Read));
    // A client id with a wildcard gets nothing from patterns.
    let sneaky = Who {
        client_id: "+",
        username: None,
    };
    assert!(!acl.allows(sneaky, "devices/+/out", Write));
    // Subscriptions: refused only when no topic they match could ever be read.
    assert!(acl.may_ever_read(ALICE, "#"));
    assert!(acl.may_ever_read(ANON, "+/news"));
    assert!(!acl.may_ever_read(ANON, "home/#"));
    assert!(!acl.may_ever_read(ANON, "devices/sensor-9/#"), "write only");
    assert!(acl.may_ever_read(ALICE, "users/+/inbox"));
}

#[test]
fn a_bad_line_is_named() {
    let bad = |text: &str| AclFile::parse(text).err().unwrap();
    assert_eq!(bad("user alice\ntopic maybe a/b\n").0, 2);
    assert_eq!(bad("topic read a/#/b\n").0, 1);
    assert_eq!(bad("acl a/b\n").0, 1);
    assert_eq!(bad("topic\n").1, "``: not a valid topic filter");
    // One word after `topic` is the topic, read and write.
    let acl = file("topic a/b\n");
    assert!(acl.allows(ANON, "a/b", Access::Write));
}

#[test]
fn replies_are_private_with_logins_on() {
    let acl = Acl::new(None, true, &["home/datatemp/{client_id}"]).unwrap();
    let victim = Who {
        client_id: "victim",
        username: Some("v"),
    };
    use Access::*;
    assert!(acl.allows(victim, "home/datatemp/victim", Read));
    assert!(!acl.allows(ALICE, "home/datatemp/victim", Read));
    assert!(
        !acl.allows(victim, "home/datatemp/victim", Write),
        "only edgemq replies"
    );
    assert!(acl.allows(ALICE, "home/gettemp/phone-1", Write));
    assert!(
        acl.allows(ALICE, "home/datatemp/alice", Read),
        "by username too"
    );
    assert!(!acl.may_ever_read(ALICE, "home/datatemp/victim"));
    assert!(acl.may_ever_read(ALICE, "home/datatemp/+"));
    assert!(acl.may_ever_read(ALICE, "home/+/+"));
    assert!(Acl::new(None, false, &["home/datatemp/{client_id}"])
        .unwrap()
        .is_open());
}
