//! Tests of persistence against real files: the identity key in a temporary
//! data dir, the address book and history in a real SQLite database, and the
//! store thread driven through its handle. Nothing waits on a sleep: the
//! store's channel is FIFO, so a query sent after some writes observes them.

use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use gossipnet_proto::record::{NodeRecord, SignedRecord};
use gossipnet_proto::{MessageId, NodeId, SecretKey};

use super::{
    write_private, AddressBook, DataDir, HistoryFilter, Retention, Store, StoreError, MAX_FAILURES,
    PRUNE_EVERY, STORE_CHANNEL_CAPACITY,
};

fn key(seed: u8) -> SecretKey {
    SecretKey::from_bytes(&[seed; 32])
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A record for the node with key `seed`, listening on port `9000 + seed`.
fn record(seed: u8, seq: u64) -> SignedRecord {
    let key = key(seed);
    let record = NodeRecord {
        id: key.node_id(),
        addrs: vec![addr(9000 + u16::from(seed))],
        seq,
        roles: Vec::new(),
        name: None,
    };
    SignedRecord::sign(&key, record).unwrap()
}

fn id(seed: u8) -> NodeId {
    key(seed).node_id()
}

fn open_book(dir: &Path) -> AddressBook {
    AddressBook::open_in(&DataDir::open(dir).unwrap()).unwrap()
}

fn ids(book: &AddressBook, limit: usize) -> Vec<Option<NodeId>> {
    book.candidates(limit)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn identity_is_created_once_then_loaded() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a").join("node");
    let dir = DataDir::open(&path).unwrap();
    assert_eq!(dir.path(), path);

    let (first, created) = dir.load_or_create_identity().unwrap();
    assert!(created);
    let (second, created) = DataDir::open(&path)
        .unwrap()
        .load_or_create_identity()
        .unwrap();
    assert!(!created);
    assert_eq!(first.node_id(), second.node_id());

    let text = std::fs::read_to_string(dir.identity_path()).unwrap();
    assert_eq!(text.len(), 65);
    assert!(text.ends_with('\n'));
    assert!(text[..64]
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&path).unwrap().count(), 1);
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir.identity_path()), 0o600);
        assert_eq!(mode(&path), 0o700);
    }
}

#[test]
fn malformed_identity_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::open(tmp.path()).unwrap();
    for bad in [
        "not a key\n".to_string(),
        "ab".repeat(31) + "\n",
        "zz".repeat(32) + "\n",
        "ab".repeat(33) + "\n",
    ] {
        std::fs::write(dir.identity_path(), &bad).unwrap();
        let err = dir.load_or_create_identity().unwrap_err();
        assert!(
            matches!(err, StoreError::MalformedIdentity { .. }),
            "{bad:?}: {err}"
        );
        let message = err.to_string();
        assert!(message.contains(&dir.identity_path().display().to_string()));
        assert!(message.contains("64 hex characters"), "{message}");
        assert!(message.contains("move it away"), "{message}");
        // The refused file is left for the user to inspect.
        assert_eq!(std::fs::read_to_string(dir.identity_path()).unwrap(), bad);
    }

    // Written by hand: upper case and no newline are read as the same key.
    let secret = [7u8; 32];
    std::fs::write(dir.identity_path(), "07".repeat(32).to_uppercase()).unwrap();
    let (loaded, created) = dir.load_or_create_identity().unwrap();
    assert!(!created);
    assert_eq!(loaded.to_bytes(), secret);
}

#[cfg(unix)]
#[test]
fn readable_identity_is_tightened_to_0600() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::open(tmp.path()).unwrap();
    let (created, _) = dir.load_or_create_identity().unwrap();
    let perms = std::fs::Permissions::from_mode(0o644);
    std::fs::set_permissions(dir.identity_path(), perms).unwrap();

    let (loaded, _) = dir.load_or_create_identity().unwrap();
    assert_eq!(loaded.node_id(), created.node_id());
    assert_eq!(mode(&dir.identity_path()), 0o600);
}

#[test]
fn private_files_replace_the_old_one_whole_and_stay_private() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("control.json");
    std::fs::write(&path, "an old, longer, world-readable file").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    // A leftover from a crash mid-write does not stop the next write.
    std::fs::write(path.with_extension("tmp"), "half").unwrap();

    write_private(&path, b"new").unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
    #[cfg(unix)]
    assert_eq!(mode(&path), 0o600);
    // Only the file itself is left.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn data_dir_refuses_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let err = DataDir::open(&file).unwrap_err();
    assert!(matches!(err, StoreError::DataDir { .. }), "{err}");
}

#[test]
fn records_keep_the_highest_seq_and_refuse_bad_signatures() {
    let tmp = tempfile::tempdir().unwrap();
    let mut book = open_book(tmp.path());
    assert!(book.is_empty().unwrap());

    assert!(book.upsert_record(&record(1, 5), 10).unwrap());
    assert!(book.upsert_record(&record(1, 7), 11).unwrap());
    assert!(!book.upsert_record(&record(1, 6), 12).unwrap());
    // The same seq again is accepted (a re-sent record).
    assert!(book.upsert_record(&record(1, 7), 13).unwrap());
    // Sequence numbers past i64::MAX still compare as u64.
    assert!(book.upsert_record(&record(2, u64::MAX - 1), 1).unwrap());
    assert!(!book.upsert_record(&record(2, 3), 2).unwrap());
    assert!(book.upsert_record(&record(2, u64::MAX), 3).unwrap());
    assert_eq!(book.len().unwrap(), 2);

    let stored = book.candidates(10).unwrap();
    let one = stored.iter().find(|c| c.id == Some(id(1))).unwrap();
    assert_eq!(one.record.as_ref().unwrap().record().seq, 7);
    assert_eq!(one.addrs, vec![addr(9001)]);

    // Flip the last signature byte: it still decodes, but must not verify.
    let mut bytes = record(3, 1).encode();
    *bytes.last_mut().unwrap() ^= 1;
    let forged = SignedRecord::decode(&bytes).unwrap();
    let err = book.upsert_record(&forged, 1).unwrap_err();
    assert!(matches!(err, StoreError::InvalidRecord(_)), "{err}");
    assert_eq!(book.len().unwrap(), 2);
}

#[test]
fn candidates_rank_by_failures_then_last_seen_and_skip_failing_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut book = open_book(tmp.path());
    for seed in 1..=5 {
        book.upsert_record(&record(seed, 1), 100).unwrap();
    }
    book.note_seen(id(1), 300).unwrap();
    book.note_seen(id(2), 200).unwrap();
    book.note_seen(id(3), 400).unwrap();
    book.note_failure(id(3), 410).unwrap();
    // 4 was never seen.
    for _ in 0..MAX_FAILURES {
        book.note_failure(id(5), 500).unwrap();
    }
    // A plain address, seen at 250, and another for 1, added to its record's.
    book.note_address(addr(7000), None, 250).unwrap();
    book.note_address(addr(7001), Some(id(1)), 260).unwrap();

    assert_eq!(
        ids(&book, 10),
        vec![Some(id(1)), None, Some(id(2)), Some(id(4)), Some(id(3))]
    );
    assert_eq!(ids(&book, 2), vec![Some(id(1)), None]);
    let best = &book.candidates(1).unwrap()[0];
    assert_eq!(best.addrs, vec![addr(9001), addr(7001)]);
    assert_eq!(book.candidates(2).unwrap()[1].addrs, vec![addr(7000)]);
    assert!(book.candidates(0).unwrap().is_empty());

    // Seeing a peer forgives its failures.
    book.note_seen(id(3), 600).unwrap();
    assert_eq!(ids(&book, 1), vec![Some(id(3))]);

    // With only the failing peer left, it is offered after all.
    for seed in 1..=4 {
        book.forget(id(seed)).unwrap();
    }
    // Forgetting an unknown id is harmless.
    book.forget(id(9)).unwrap();
    // The plain address is something else, so the failing peer stays out.
    assert_eq!(ids(&book, 10), vec![None]);
    let mut only = open_book(tempfile::tempdir().unwrap().path());
    only.upsert_record(&record(5, 1), 1).unwrap();
    for _ in 0..MAX_FAILURES {
        only.note_failure(id(5), 2).unwrap();
    }
    assert_eq!(ids(&only, 10), vec![Some(id(5))]);
}

#[test]
fn addresses_with_an_id_but_no_record_are_one_candidate() {
    let tmp = tempfile::tempdir().unwrap();
    let mut book = open_book(tmp.path());
    book.note_address(addr(7000), Some(id(1)), 10).unwrap();
    book.note_address(addr(7001), Some(id(1)), 20).unwrap();
    // Noting again without an id keeps the id.
    book.note_address(addr(7000), None, 30).unwrap();
    let candidates = book.candidates(10).unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].id, Some(id(1)));
    assert_eq!(candidates[0].addrs, vec![addr(7000), addr(7001)]);
    assert_eq!(candidates[0].record, None);

    // Once its record arrives, the addresses join it.
    book.upsert_record(&record(1, 1), 40).unwrap();
    let candidates = book.candidates(10).unwrap();
    assert_eq!(candidates.len(), 1);
    assert_eq!(
        candidates[0].addrs,
        vec![addr(9001), addr(7000), addr(7001)]
    );
    book.forget(id(1)).unwrap();
    assert!(book.candidates(10).unwrap().is_empty());
}

#[test]
fn everything_persists_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let message = MessageId::of(b"hello");
    {
        let mut book = open_book(tmp.path());
        book.upsert_record(&record(1, 3), 10).unwrap();
        book.upsert_record(&record(2, 3), 10).unwrap();
        book.note_seen(id(2), 20).unwrap();
        book.note_address(addr(7000), None, 5).unwrap();
        assert!(book.save_message(message, id(1), 1, b"hello").unwrap());
        book.close().unwrap();
    }
    let mut book = open_book(tmp.path());
    assert_eq!(book.len().unwrap(), 2);
    assert_eq!(ids(&book, 10), vec![Some(id(2)), None, Some(id(1))]);
    assert_eq!(book.recent_messages(10).unwrap(), vec![b"hello".to_vec()]);
    // A message is kept once.
    assert!(!book.save_message(message, id(1), 1, b"hello").unwrap());
    assert_eq!(book.history_len().unwrap(), 1);
}

#[test]
fn a_database_from_a_newer_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::open(tmp.path()).unwrap();
    open_book(tmp.path()).close().unwrap();
    let conn = rusqlite::Connection::open(dir.database_path()).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = AddressBook::open_in(&dir).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade gossipnet"));
}

#[test]
fn prune_keeps_the_best_peers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut book = open_book(tmp.path());
    for seed in 1..=20u8 {
        book.upsert_record(&record(seed, 1), 1).unwrap();
        book.note_seen(id(seed), u64::from(seed) * 10).unwrap();
        if seed % 3 == 0 {
            book.note_failure(id(seed), 1_000).unwrap();
        }
    }
    let best = ids(&book, 5);
    assert_eq!(book.prune(5).unwrap(), 15);
    assert_eq!(book.len().unwrap(), 5);
    assert_eq!(ids(&book, 100), best);
    assert_eq!(book.prune(5).unwrap(), 0);
    assert_eq!(book.prune(0).unwrap(), 5);
    assert!(book.is_empty().unwrap());
}

#[test]
fn history_is_bounded_and_newest_first() {
    // A small bound, so the test writes a few thousand rows, not 100,000.
    const MAX_HISTORY: usize = 1_000;
    let retention = Retention {
        max_messages: MAX_HISTORY,
        ..Retention::default()
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut book = open_book(tmp.path());
    book.set_retention(retention);
    let total = MAX_HISTORY + 3 * PRUNE_EVERY as usize + 7;
    let bound = MAX_HISTORY + PRUNE_EVERY as usize;
    let body = |n: usize| n.to_be_bytes().to_vec();
    for n in 0..total {
        let bytes = body(n);
        // A wild origin clock must not change the order, which is arrival.
        let time_ms = if n == 0 { u64::MAX } else { n as u64 };
        book.save_message(MessageId::of(&bytes), id(1), time_ms, &bytes)
            .unwrap();
        if n % PRUNE_EVERY as usize == 0 {
            assert!(book.history_len().unwrap() <= bound);
        }
    }
    assert!(book.history_len().unwrap() <= bound);
    let recent = book.recent_messages(3).unwrap();
    assert_eq!(
        recent,
        vec![body(total - 1), body(total - 2), body(total - 3)]
    );
    let all = book.recent_messages(usize::MAX).unwrap();
    assert_eq!(all.len(), MAX_HISTORY);
    book.close().unwrap();

    // Reopening with the bound trims to it.
    let mut book = open_book(tmp.path());
    book.set_retention(retention);
    book.prune_history().unwrap();
    assert_eq!(book.history_len().unwrap(), MAX_HISTORY);
}

#[test]
fn history_drops_what_is_past_the_age_window_or_over_the_byte_bound() {
    let tmp = tempfile::tempdir().unwrap();
    let mut book = open_book(tmp.path());
    let now = crate::time::unix_ms();
    let hour = 3_600_000;
    for (n, time_ms) in [(1u8, now - 30 * hour), (2, now - hour), (3, now)] {
        let bytes = vec![n; 100];
        book.save_message(MessageId::of(&bytes), id(n), time_ms, &bytes)
            .unwrap();
    }
    book.set_retention(Retention {
        max_age_ms: Some(24 * hour),
        max_messages: 10,
        max_bytes: 150,
    });
    book.prune_history().unwrap();
    // Message 1 is too old, and of 2 and 3 only the newest fits 150 bytes.
    assert_eq!(book.recent_messages(10).unwrap(), vec![vec![3u8; 100]]);
}

#[test]
fn history_reads_filter_by_time_and_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let mut book = open_book(tmp.path());
    for (n, time_ms) in [(1u8, 100), (2, 200), (1, 300)] {
        let bytes = vec![n, time_ms as u8];
        book.save_message(MessageId::of(&bytes), id(n), time_ms, &bytes)
            .unwrap();
    }
    let filter = |since_ms, from: Option<String>| HistoryFilter {
        since_ms,
        from,
        all_kinds: false,
    };
    let one = id(1).to_string()[..8].to_string();
    assert_eq!(
        book.query_history(&filter(None, Some(one)), 10).unwrap(),
        vec![vec![1u8, 44], vec![1u8, 100]]
    );
    assert_eq!(
        book.query_history(&filter(Some(200), None), 10).unwrap(),
        vec![vec![1u8, 44], vec![2u8, 200]]
    );
    assert_eq!(book.query_history(&filter(None, None), 1).unwrap().len(), 1);
}

#[tokio::test]
async fn the_handle_round_trips_through_the_thread() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::open(tmp.path()).unwrap();
    let store = Store::open(&dir).unwrap();
    store.record(record(1, 1));
    store.record(record(2, 1));
    // Noted before 2 is seen, so at the same millisecond or earlier: 2
    // ranks first either way.
    store.address(addr(7000), None);
    store.seen(id(2));
    store.failure(id(1));
    store.message(MessageId::of(b"m"), id(1), 1, Bytes::from_static(b"m"));
    // An invalid record is dropped on the thread without harm.
    let mut bytes = record(3, 1).encode();
    *bytes.last_mut().unwrap() ^= 1;
    store.record(SignedRecord::decode(&bytes).unwrap());

    let candidates = store.candidates(10).await.unwrap();
    let got: Vec<_> = candidates.iter().map(|c| c.id).collect();
    assert_eq!(got, vec![Some(id(2)), None, Some(id(1))]);
    assert_eq!(
        store.recent_messages(10).await.unwrap(),
        vec![b"m".to_vec()]
    );
    assert_eq!(store.dropped_writes(), 0);

    let other = store.clone();
    store.close().await;
    assert!(matches!(other.candidates(1).await, Err(StoreError::Closed)));
    other.seen(id(1));
    assert_eq!(other.dropped_writes(), 1);
    other.close().await;

    // Everything sent before close reached the disk.
    let book = AddressBook::open_in(&dir).unwrap();
    assert_eq!(book.len().unwrap(), 2);
    assert_eq!(book.history_len().unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_all_seen_by_a_later_query() {
    const TASKS: u8 = 8;
    const PER_TASK: u16 = 50;
    // Fire-and-forget writes are dropped only when the channel is full; this
    // many never fill it, so every one must arrive.
    const _: () = assert!(TASKS as usize * (2 * PER_TASK as usize + 1) <= STORE_CHANNEL_CAPACITY);

    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::open(tmp.path()).unwrap();
    let store = Store::open(&dir).unwrap();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.record(record(task + 1, 1));
            for n in 0..PER_TASK {
                let port = 10_000 + u16::from(task) * 1_000 + n;
                store.address(addr(port), None);
                let body = Bytes::from(port.to_be_bytes().to_vec());
                store.message(MessageId::of(&body), id(task + 1), 1, body);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = store.candidates(10_000).await.unwrap();
    let records = all.iter().filter(|c| c.record.is_some()).count();
    let plain = all.iter().filter(|c| c.record.is_none()).count();
    assert_eq!(records, usize::from(TASKS));
    assert_eq!(plain, usize::from(TASKS) * usize::from(PER_TASK));
    let messages = store.recent_messages(usize::MAX).await.unwrap();
    assert_eq!(messages.len(), usize::from(TASKS) * usize::from(PER_TASK));
    assert_eq!(store.dropped_writes(), 0);
    store.close().await;
}
