use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn table(dir: &std::path::Path) -> Table {
    Table::open(dir).expect("open")
}

#[test]
fn handles_survive_a_restart_in_creation_order() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("state/woollama");
    let t = table(&dir);
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut h = Handle::new(Some(format!("mock/m{i}")), None);
        h.title = Some(format!("chat {i}"));
        let (h, created) = t.create(h).expect("create");
        assert!(created);
        ids.push(h.id);
    }
    t.update(&ids[2], |h| {
        h.metadata.insert("topic".into(), "soup".into());
    })
    .expect("update");
    t.delete(&ids[4]).expect("delete");

    // A new process reads what the old one wrote.
    let again = table(&dir);
    let page = again.list(Order::Asc, None, 100).expect("list");
    let listed: Vec<&str> = page.data.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(
        listed,
        ids[..4].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(again.get(&ids[2]).expect("get").metadata["topic"], "soup");
    assert!(matches!(
        again.get(&ids[4]),
        Err(Error::UnknownConversation(_))
    ));

    // Private: the directory 0700, the file 0600, no temp file left.
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("conversations.json")), 0o600);
    assert_eq!(std::fs::read_dir(&dir).expect("ls").count(), 1);
}

#[test]
fn paging_and_keys() {
    let base = tempfile::tempdir().expect("tempdir");
    let t = table(base.path());
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(t.create(Handle::new(None, None)).expect("create").0.id);
    }
    let p = t.list(Order::Asc, None, 2).expect("page 1");
    assert_eq!(p.data.len(), 2);
    assert!(p.has_more);
    let p2 = t.list(Order::Asc, Some(&p.data[1].id), 2).expect("page 2");
    assert_eq!(p2.data[0].id, ids[2]);
    let last = t.list(Order::Asc, Some(&ids[3]), 2).expect("last");
    assert_eq!(last.data.len(), 1);
    assert!(!last.has_more);
    let desc = t.list(Order::Desc, None, 1).expect("desc");
    assert_eq!(desc.data[0].id, ids[4]);
    assert!(matches!(
        t.list(Order::Asc, Some("conv_nope"), 2),
        Err(Error::UnknownCursor(_))
    ));

    // A key attaches to the conversation it first created.
    let mut keyed = Handle::new(None, None);
    keyed.key = Some("ticket-42".into());
    let (first, created) = t.create(keyed.clone()).expect("create");
    assert!(created);
    keyed.id = "conv_other".into();
    let (again, created) = t.create(keyed).expect("attach");
    assert!(!created);
    assert_eq!(again.id, first.id);
}

#[test]
fn a_broken_table_is_named_not_replaced() {
    let base = tempfile::tempdir().expect("tempdir");
    std::fs::write(base.path().join("conversations.json"), "{half a tab").expect("write");
    let e = Table::open(base.path()).expect_err("corrupt");
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("move it aside"), "{e}");
    // A symlink at the path is never followed.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::write(other.path().join("secret"), "{}").expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(
        other.path().join("secret"),
        dir.path().join("conversations.json"),
    )
    .expect("symlink");
    assert!(matches!(
        Table::open(dir.path()),
        Err(Error::Storage { .. })
    ));
}

#[test]
fn a_failed_write_changes_nothing() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("state");
    let t = table(&dir);
    let (h, _) = t.create(Handle::new(None, None)).expect("create");
    // The state dir is gone and a file sits in its place (root or not,
    // nothing can be written there): the change is refused and forgotten.
    std::fs::rename(&dir, base.path().join("moved")).expect("move");
    std::fs::write(&dir, "not a directory").expect("write");
    let refused = t.create(Handle::new(None, None));
    assert!(
        matches!(refused, Err(Error::Storage { what: "write", .. })),
        "{refused:?}"
    );
    let page = t.list(Order::Asc, None, 10).expect("list");
    assert_eq!(page.data.len(), 1);
    assert_eq!(page.data[0].id, h.id);
}
