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

    // Private: the directory 0700, the journal 0600, no temp file left.
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("conversations.journal")), 0o600);
    assert_eq!(names(&dir), ["conversations.journal"]);
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
}

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn compacting(dir: &std::path::Path, after: usize) -> Table {
    Table::with(Backend::File(
        file::FileTable::open(dir)
            .expect("open")
            .compacting_after(after),
    ))
}

fn ids(t: &Table) -> Vec<String> {
    let page = t.list(Order::Asc, None, 1000).expect("list");
    page.data.into_iter().map(|h| h.id).collect()
}

/// Each change costs the journal a line; once it holds more entries than
/// the table has handles, the table is written whole and the journal
/// emptied, and a restart reads both.
#[test]
fn the_journal_is_folded_into_the_table_and_both_are_read_again() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path();
    let t = compacting(dir, 4);
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(t.create(Handle::new(None, None)).expect("create").0.id);
    }
    assert_eq!(names(dir), ["conversations.journal"]);
    t.record_turn("resp_1", &made[0]).expect("turn");
    t.update(&made[1], |h| h.title = Some("soup".into()))
        .expect("update");
    // Five entries > max(4, 3 handles): compacted.
    assert_eq!(names(dir), ["conversations.journal", "conversations.json"]);
    assert_eq!(
        std::fs::metadata(dir.join("conversations.journal"))
            .expect("meta")
            .len(),
        0
    );
    assert_eq!(mode(&dir.join("conversations.json")), 0o600);
    // A journal replayed over a table that already holds it: the same table.
    let journal_before = {
        let again = compacting(dir, 4);
        again.delete(&made[2]).expect("delete");
        made.pop();
        again
            .update(&made[0], |h| h.title = Some("bread".into()))
            .expect("update");
        again.record_turn("resp_0", &made[0]).expect("turn");
        std::fs::read(dir.join("conversations.journal")).expect("read")
    };
    let t = compacting(dir, 1);
    t.record_turn("resp_2", &made[1]).expect("turn");
    // Four entries > max(1, 2 handles): compacted again.
    assert_eq!(
        std::fs::metadata(dir.join("conversations.journal"))
            .expect("meta")
            .len(),
        0
    );
    std::fs::write(dir.join("conversations.journal"), &journal_before).expect("put back");
    let again = table(dir);
    assert_eq!(ids(&again), made);
    assert_eq!(
        again.get(&made[1]).expect("get").title.as_deref(),
        Some("soup")
    );
    assert_eq!(
        again.get(&made[0]).expect("get").title.as_deref(),
        Some("bread")
    );
    assert_eq!(again.conversation_of("resp_0").expect("resp_0").id, made[0]);
    assert_eq!(again.conversation_of("resp_1").expect("resp_1").id, made[0]);
    assert_eq!(again.conversation_of("resp_2").expect("resp_2").id, made[1]);
}

/// A last journal line a crash cut short (or garbled) was never
/// acknowledged: it is dropped, and nothing is written on opening (another
/// process may be appending); the next change writes the table whole
/// first. A broken line before the end is a corrupt table, named; a
/// symlink in the journal's place is refused.
#[test]
fn a_cut_short_journal_line_is_dropped_a_broken_one_named() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path();
    let t = table(dir);
    let (h, _) = t.create(Handle::new(None, None)).expect("create");
    let journal = dir.join("conversations.journal");
    let whole = std::fs::read(&journal).expect("read");
    for tail in [&br#"{"put":{"id":"conv_half"#[..], b"{\0\0\0\0\n"] {
        let mut cut = whole.clone();
        cut.extend_from_slice(tail);
        std::fs::write(&journal, &cut).expect("write");
        let again = table(dir);
        assert_eq!(ids(&again), [h.id.as_str()]);
        assert_eq!(std::fs::read(&journal).expect("read"), cut, "opening wrote");
    }
    // The next change follows the table written whole.
    let again = table(dir);
    let (h2, _) = again.create(Handle::new(None, None)).expect("create");
    assert_eq!(names(dir), ["conversations.journal", "conversations.json"]);
    assert_eq!(ids(&table(dir)), [h.id.as_str(), h2.id.as_str()]);

    let mut broken = b"{not json}\n".to_vec();
    broken.extend_from_slice(&whole);
    std::fs::write(&journal, &broken).expect("write");
    let e = Table::open(dir).expect_err("corrupt");
    assert!(
        matches!(&e, Error::Corrupt { path, .. } if path == &journal)
            && e.to_string().contains("line 1"),
        "{e}"
    );

    let other = tempfile::tempdir().expect("tempdir");
    let elsewhere = other.path().join("elsewhere");
    std::fs::write(&elsewhere, "").expect("write");
    std::fs::remove_file(&journal).expect("rm");
    std::os::unix::fs::symlink(&elsewhere, &journal).expect("symlink");
    assert!(matches!(Table::open(dir), Err(Error::Storage { .. })));
}

/// A symlink put in the journal's place while the table is open is not
/// written through: the change is refused, naming the journal.
#[test]
fn a_symlink_put_in_the_journals_place_is_not_written_through() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("state");
    let t = table(&dir);
    t.create(Handle::new(None, None)).expect("create");
    let journal = dir.join("conversations.journal");
    let elsewhere = base.path().join("elsewhere");
    std::fs::write(&elsewhere, "").expect("write");
    std::fs::remove_file(&journal).expect("rm");
    std::os::unix::fs::symlink(&elsewhere, &journal).expect("symlink");
    let refused = t.create(Handle::new(None, None));
    assert!(
        matches!(&refused, Err(Error::Storage { what: "write", path, .. }) if path == &journal),
        "{refused:?}"
    );
    assert_eq!(std::fs::read(&elsewhere).expect("read"), b"");
    assert_eq!(ids(&t).len(), 1);
}

/// A state dir replaced by an empty one while the table is open: the next
/// change writes the table whole before its journal line, so a restart
/// finds every conversation, not only the ones made after.
#[test]
fn a_state_dir_replaced_by_an_empty_one_gets_the_whole_table() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path().join("state");
    let t = table(&dir);
    let mut made = Vec::new();
    for _ in 0..2 {
        made.push(t.create(Handle::new(None, None)).expect("create").0.id);
    }
    std::fs::remove_dir_all(&dir).expect("rm");
    std::fs::create_dir(&dir).expect("mkdir");
    made.push(t.create(Handle::new(None, None)).expect("create").0.id);
    assert_eq!(ids(&table(&dir)), made);
}

/// A table that cannot be written whole (a directory in its place) keeps
/// every change in the journal: changes are still made, and a restart
/// reads them all.
#[test]
fn a_failed_compaction_loses_nothing() {
    let base = tempfile::tempdir().expect("tempdir");
    let dir = base.path();
    let t = compacting(dir, 2);
    std::fs::create_dir(dir.join("conversations.json")).expect("mkdir");
    std::fs::create_dir(dir.join("conversations.json").join("x")).expect("mkdir");
    let mut made = Vec::new();
    for _ in 0..6 {
        made.push(t.create(Handle::new(None, None)).expect("create").0.id);
    }
    std::fs::remove_dir_all(dir.join("conversations.json")).expect("rmdir");
    assert_eq!(ids(&table(dir)), made);
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
