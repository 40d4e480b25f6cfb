//! The store's objects in a folder and on a real S3 server (s3s-fs on
//! loopback): one suite for both, and the analysis writer's lease.

use std::time::Duration;

use vigie_ingest::store::lease::{FenceError, Lease, Standing};
use vigie_ingest::store::objects::{Location, ObjectError, Objects};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A fresh prefix of the test bucket on the S3 server, when there is one.
fn s3(test: &str) -> Option<Objects> {
    let loc = crate::common::s3_location(test)?;
    Some(Objects::open(&Location::S3(loc)).unwrap())
}

fn folder(dir: &tempfile::TempDir) -> Objects {
    Objects::open(&Location::Folder(dir.path().join("store"))).unwrap()
}

fn conflict<T: std::fmt::Debug>(r: Result<T, ObjectError>) -> bool {
    matches!(r, Err(ObjectError::Conflict { .. }))
}

/// What every store must do, folder or bucket. `races`: whether eight
/// concurrent conditional writes are checked too. The folder store
/// compares and writes under a lock; s3s-fs checks a PUT's precondition
/// and then writes, without a lock (s3s-fs 0.14.1, src/s3.rs, put_object),
/// so that concurrent conditional PUTs can all succeed there, where AWS S3,
/// MinIO or R2 let one through.
async fn suite(o: &Objects, races: bool) {
    let name = o.location().to_string();
    // Absent, then created once.
    assert!(o.get("offsets/t/0.json").await.unwrap().is_none(), "{name}");
    let v1 = o.create("offsets/t/0.json", b"one").await.unwrap();
    assert!(conflict(o.create("offsets/t/0.json", b"two").await), "{name}: a second create must fail");
    let (bytes, read) = o.get("offsets/t/0.json").await.unwrap().unwrap();
    assert_eq!((bytes.as_slice(), &read), (&b"one"[..], &v1), "{name}");
    // Replaced only from the version in place.
    let v2 = o.update("offsets/t/0.json", b"two", &v1).await.unwrap();
    assert_ne!(v1, v2, "{name}");
    assert!(conflict(o.update("offsets/t/0.json", b"stale", &v1).await), "{name}: a stale version must fail");
    assert_eq!(o.get("offsets/t/0.json").await.unwrap().unwrap().0, b"two", "{name}");
    // An overwrite changes the version: the one before no longer matches.
    let v3 = o.put("offsets/t/0.json", b"three").await.unwrap();
    assert!(conflict(o.update("offsets/t/0.json", b"x", &v2).await), "{name}");
    o.update("offsets/t/0.json", b"four", &v3).await.unwrap();
    // In a folder, the same content written again is a new version: a
    // writer that read the one before cannot write over it. (On S3 an
    // entity tag is the MD5 of the content: the same content keeps its
    // version, which is why each lease renewal writes a new counter.)
    let (_, v5) = o.get("offsets/t/0.json").await.unwrap().unwrap();
    o.update("offsets/t/0.json", b"four", &v5).await.unwrap();
    if races {
        assert!(conflict(o.update("offsets/t/0.json", b"x", &v5).await), "{name}");
    }
    // A conditional write on an object that is gone fails too.
    let (_, v4) = o.get("offsets/t/0.json").await.unwrap().unwrap();
    assert!(o.delete("offsets/t/0.json").await.unwrap(), "{name}");
    assert!(!o.delete("offsets/t/0.json").await.unwrap(), "{name}: nothing left to delete");
    assert!(conflict(o.update("offsets/t/0.json", b"x", &v4).await), "{name}");

    // Listing and purging by prefix.
    for (k, b) in [
        ("raw/lyon-1/2026-11-29/a.parquet", &b"12345"[..]),
        ("raw/lyon-1/2026-11-30/b.parquet", b"123"),
        ("raw/lyon-1/2026-11-30/c.parquet", b"1"),
        ("summaries/lyon-1/2026-11-30.parquet", b"12"),
    ] {
        o.put(k, b).await.unwrap();
    }
    let all = o.list("").await.unwrap();
    assert_eq!(
        all,
        vec![
            ("raw/lyon-1/2026-11-29/a.parquet".to_string(), 5),
            ("raw/lyon-1/2026-11-30/b.parquet".to_string(), 3),
            ("raw/lyon-1/2026-11-30/c.parquet".to_string(), 1),
            ("summaries/lyon-1/2026-11-30.parquet".to_string(), 2),
        ],
        "{name}"
    );
    assert_eq!(o.list("raw/lyon-1/2026-11-30").await.unwrap().len(), 2, "{name}");
    assert_eq!(o.delete_prefix("raw/lyon-1/2026-11-30").await.unwrap(), 2, "{name}");
    let left: Vec<String> = o.list("raw").await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, vec!["raw/lyon-1/2026-11-29/a.parquet".to_string()], "{name}");
    assert_eq!(o.delete_prefix("raw/none").await.unwrap(), 0, "{name}");

    // Keys that would leave the store are refused before anything is sent.
    for bad in ["../x", "a//b", "/a", "a/./b", "", ".objects.lock", "raw/.x.tmp", "a%b", "a b", "a~b"] {
        assert!(matches!(o.get(bad).await, Err(ObjectError::BadKey { .. })), "{name}: {bad:?}");
    }

    if !races {
        return;
    }
    // Eight writers race: one create wins, then one update from the same
    // version wins.
    let creates = futures_race(o, "race.json", None).await;
    assert_eq!(creates, 1, "{name}: exactly one create wins");
    let (_, v) = o.get("race.json").await.unwrap().unwrap();
    let updates = futures_race(o, "race.json", Some(v)).await;
    assert_eq!(updates, 1, "{name}: exactly one update from one version wins");
}

/// Eight concurrent conditional writes of `key`; how many succeeded.
async fn futures_race(o: &Objects, key: &str, from: Option<vigie_ingest::store::objects::Version>) -> usize {
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let (o, key, from) = (o.clone(), key.to_string(), from.clone());
        tasks.push(tokio::spawn(async move {
            let body = vec![i; 16];
            match &from {
                None => o.create(&key, &body).await,
                Some(v) => o.update(&key, &body, v).await,
            }
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(ObjectError::Conflict { .. }) => {}
            Err(e) => panic!("a racing write failed otherwise: {e}"),
        }
    }
    won
}

#[test]
fn a_folder_store_keeps_the_object_contract() {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(suite(&folder(&dir), true));
}

#[test]
fn an_s3_store_keeps_the_object_contract() {
    let Some(o) = s3("contract") else { return };
    runtime().block_on(suite(&o, false));
}

/// Two instances, one lease: one holder at a time; a holder that stops
/// renewing is replaced once its term has run out, not before; the old
/// holder then writes nothing; a lease let go is taken at once.
async fn lease_suite(o: &Objects) {
    let name = o.location().to_string();
    let term = Duration::from_millis(800);
    let mut a = Lease::new(o.clone(), "analysis", "host-a:1", term, &["findings.json"]);
    let mut b = Lease::new(o.clone(), "analysis", "host-b:2", term, &["findings.json"]);
    assert_eq!(a.tick().await.unwrap(), Standing::Held { generation: 1 }, "{name}");
    assert_eq!(a.write("findings.json", b"{\"by\":\"a\"}").await.unwrap(), 1, "{name}");
    // While a renews (every 200 ms), b never takes it.
    for _ in 0..8 {
        assert!(matches!(b.tick().await.unwrap(), Standing::Other { generation: 1, .. }), "{name}");
        assert_eq!(a.tick().await.unwrap(), Standing::Held { generation: 1 }, "{name}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // a stops renewing (it hangs, or its host is cut off): b takes the
    // lease after a whole term, not before.
    let stopped = tokio::time::Instant::now();
    let taken = loop {
        if let Standing::Held { generation } = b.tick().await.unwrap() {
            break generation;
        }
        assert!(stopped.elapsed() < term * 3, "{name}: b never took the lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let waited = stopped.elapsed();
    assert_eq!(taken, 2, "{name}");
    assert!(waited >= term, "{name}: taken after {waited:?}, before the term ({term:?})");
    assert!(waited <= term * 2, "{name}: taken after {waited:?}, more than two terms");
    // a's own clock says its term is over: it no longer counts itself the
    // holder, and a write through the lease is refused.
    assert_eq!(a.held(), None, "{name}");
    assert_eq!(b.write("findings.json", b"{\"by\":\"b\"}").await.unwrap(), 2, "{name}");
    assert!(
        matches!(a.write("findings.json", b"{\"by\":\"a, late\"}").await, Err(FenceError::NotHeld(_))),
        "{name}"
    );
    assert_eq!(o.get("findings.json").await.unwrap().unwrap().0, b"{\"by\":\"b\"}", "{name}");
    assert!(matches!(a.tick().await.unwrap(), Standing::Other { generation: 2, .. }), "{name}");
    // b lets it go at shutdown: a takes it at its next tick.
    b.release().await.unwrap();
    assert_eq!(a.tick().await.unwrap(), Standing::Held { generation: 3 }, "{name}");
    assert_eq!(a.write("findings.json", b"{\"by\":\"a again\"}").await.unwrap(), 3, "{name}");
    assert!(matches!(b.write("findings.json", b"x").await, Err(FenceError::NotHeld(_))), "{name}");

    // A take whose answer was lost (the request retried, and refused as a
    // conflict by its own first success): the lease holds this instance's
    // record, not let go, which the instance does not count as its own. It
    // holds it again at its next tick, without waiting a term, and no one
    // else takes it.
    let mut c = Lease::new(o.clone(), "lost", "host-c:3", term, &[]);
    let record = br#"{"holder":"host-c:3","generation":1,"term_ms":800,"renewal":0}"#;
    o.create("leases/lost.json", record).await.unwrap();
    assert_eq!(c.tick().await.unwrap(), Standing::Held { generation: 1 }, "{name}");
    let mut d = Lease::new(o.clone(), "lost", "host-d:4", term, &[]);
    assert!(matches!(d.tick().await.unwrap(), Standing::Other { generation: 1, .. }), "{name}");
    // Let go (term 0), it is no longer this instance's to adopt: the other
    // takes it, with the next generation.
    c.release().await.unwrap();
    assert_eq!(d.tick().await.unwrap(), Standing::Held { generation: 2 }, "{name}");
    assert!(matches!(c.tick().await.unwrap(), Standing::Other { generation: 2, .. }), "{name}");
}

/// A holder that renewed, then stalled past its term while another took
/// the lease and wrote: the stale holder's write, conditional on the
/// version it last wrote, is refused by the store itself.
async fn stale_writer(o: &Objects) {
    let name = o.location().to_string();
    let term = Duration::from_millis(500);
    let mut a = Lease::new(o.clone(), "analysis", "host-a:1", term, &["findings.json"]);
    let mut b = Lease::new(o.clone(), "analysis", "host-b:2", term, &["findings.json"]);
    a.tick().await.unwrap();
    a.write("findings.json", b"a1").await.unwrap();
    let (_, a_version) = o.get("findings.json").await.unwrap().unwrap();
    b.tick().await.unwrap();
    tokio::time::sleep(term + Duration::from_millis(100)).await;
    assert_eq!(b.tick().await.unwrap(), Standing::Held { generation: 2 }, "{name}");
    b.write("findings.json", b"b1").await.unwrap();
    // What a's write would send after a renewal it made before the stall.
    assert!(conflict(o.update("findings.json", b"a2", &a_version).await), "{name}");
    assert_eq!(o.get("findings.json").await.unwrap().unwrap().0, b"b1", "{name}");

    // The other order: b stalls, a takes the lease back (and reads the
    // object's version then), b's late write lands before a's first one:
    // a's write is refused and a lets the lease go. One of the two writes
    // failed.
    let (_, b_version) = o.get("findings.json").await.unwrap().unwrap();
    tokio::time::sleep(term + Duration::from_millis(100)).await;
    assert!(matches!(a.tick().await.unwrap(), Standing::Other { generation: 2, .. }), "{name}");
    tokio::time::sleep(term + Duration::from_millis(100)).await;
    assert_eq!(a.tick().await.unwrap(), Standing::Held { generation: 3 }, "{name}");
    o.update("findings.json", b"b2, late", &b_version).await.unwrap();
    assert!(matches!(a.write("findings.json", b"a3").await, Err(FenceError::NotHeld(_))), "{name}");
    assert_eq!(o.get("findings.json").await.unwrap().unwrap().0, b"b2, late", "{name}");
    assert_eq!(a.held(), None, "{name}: a let the lease go");
}

#[test]
fn a_folder_lease_has_one_holder_and_fences_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let o = folder(&dir);
    runtime().block_on(async {
        lease_suite(&o).await;
        o.delete("leases/analysis.json").await.unwrap();
        o.delete("findings.json").await.unwrap();
        stale_writer(&o).await;
    });
}

#[test]
fn an_s3_lease_has_one_holder_and_fences_the_old_one() {
    let Some(o) = s3("lease") else { return };
    let o2 = s3("stale").unwrap();
    runtime().block_on(async {
        lease_suite(&o).await;
        stale_writer(&o2).await;
    });
}

#[test]
fn store_locations_are_read_from_the_path() {
    assert_eq!(Location::parse("/var/lib/vigie").unwrap(), Location::Folder("/var/lib/vigie".into()));
    let Location::S3(s) = Location::parse("s3://vigie-store/sites/lyon/").unwrap() else { panic!() };
    assert_eq!((s.bucket.as_str(), s.prefix.as_str()), ("vigie-store", "sites/lyon"));
    assert_eq!(Location::parse("s3://vigie-store").unwrap().to_string(), "s3://vigie-store");
    for bad in ["s3://", "s3://UPPER", "s3://ab", "s3://b-b-b/../x", "s3://bucket/a//b"] {
        assert!(Location::parse(bad).is_err(), "{bad}");
    }
}

/// A partition's lease in a bucket does what the folder's file lock does:
/// one flush moves the partition's durable point at a time; the next flush
/// need not wait once the lease is let go; an instance that crashed
/// holding it is waited for one term; and that instance, should it wake
/// up, writes neither a part nor the checkpoint, even once the lease is
/// free again (a write prepared under one generation is never made under
/// another).
#[test]
fn a_partition_lease_in_a_bucket_lets_one_flush_write_at_a_time() {
    use std::sync::Arc;
    use vigie_ingest::store::bucket::Bucket;
    use vigie_ingest::store::{Checkpoint, Faults, RawName, Store};
    let Some(loc) = crate::common::s3_location("partition-lease") else { return };
    let term = Duration::from_secs(1);
    let a = Arc::new(Bucket::open(&loc, "a").unwrap().with_term(term));
    let b = Arc::new(Bucket::open(&loc, "b").unwrap().with_term(term));
    let (sa, sb) = (Store::Bucket(a.clone()), Store::Bucket(b.clone()));
    let guard = sa.lock_partition("t", 0).unwrap();
    let e = sb.lock_partition("t", 0).err().expect("held by a");
    assert!(e.to_string().contains("held by a"), "{e}");
    drop(guard);
    // Let go at the end of A's flush: B takes it at once.
    let stale = sb.lock_partition("t", 0).unwrap();
    // B stalls (or crashes) holding it: A waits a whole term, then takes it.
    let started = std::time::Instant::now();
    let guard = loop {
        match sa.lock_partition("t", 0) {
            Ok(g) => break g,
            Err(_) => {
                assert!(started.elapsed() < 3 * term, "A never took the lease");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    assert!(started.elapsed() >= term, "taken before B's term ran out");
    let ck = |seq| Checkpoint { seq, epoch: 0, last: 9, fingerprint: None };
    sa.write_checkpoint(&guard, "t", 0, &ck(1), &Faults::default()).unwrap();
    // A's flush ends: the lease is free again.
    drop(guard);
    // B wakes up: its term ran out on its own clock, so it writes no part,
    // and its checkpoint is refused (it does not take the free lease back
    // under the generation it prepared the write with).
    assert!(!b.holds("t", 0));
    let df = polars::prelude::df!("x" => [1i64]).unwrap();
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    let name = RawName { topic: "t".into(), epoch: 0, partition: 0, first: 0, last: 9 };
    let (written, _) =
        sb.write_frames(&stale, &[("s".into(), date, df)], &name, 2, &Faults::default()).unwrap_err();
    assert!(written.is_empty());
    assert!(b.list("raw").unwrap().is_empty(), "a part was written without the lease");
    assert!(sb.write_checkpoint(&stale, "t", 0, &ck(2), &Faults::default()).is_err());
    assert_eq!(sa.read_checkpoint("t", 0).unwrap().best, Some(ck(1)));
}

/// A bucket that refuses the credentials (HTTP 403) is an error that no
/// retry heals, as a folder that refuses its permissions: the flush's
/// error says so (kind PermissionDenied), and the service stops.
#[test]
fn refused_credentials_are_a_permission_error_not_one_that_heals() {
    use vigie_ingest::store::bucket::Bucket;
    use vigie_ingest::store::Store;
    let Some(mut loc) = crate::common::s3_location("refused") else { return };
    loc.credentials = loc.credentials.map(|(id, _)| (id, "not-the-secret".into()));
    let store = Store::Bucket(std::sync::Arc::new(Bucket::open(&loc, "a").unwrap()));
    let Err(e) = store.lock_partition("t", 0) else { panic!("a refused bucket took a lease") };
    match &e {
        vigie_ingest::IngestError::Io { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("refused"), "{e}");
}
