//! `vigie ingest` against a real Kafka-protocol broker on loopback (tansu,
//! started by scripts/test.sh, address in VIGIE_TEST_BROKER): the store
//! holds exactly the unique good events and the dead-letter topic exactly
//! the bad ones; kill -9 at random points loses and repeats nothing; two
//! instances share the partitions.

use crate::common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rand::{Rng, SeedableRng};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The broker's address; `None` (the test is skipped, and says so) outside
/// scripts/test.sh when no broker was started.
fn broker() -> Option<String> {
    // The services are stopped with `kill -TERM`.
    common::needs(common::Tool::Kill)?;
    common::needs(common::Tool::Broker)
}

pub(crate) fn unique(name: &str) -> String {
    format!("{name}-{}-{}", std::process::id(), rand::random::<u32>())
}

pub(crate) fn create_topic(brokers: &str, topic: &str, partitions: i32) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
        let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let r = admin.create_topics(&[t], &AdminOptions::new()).await.unwrap();
        for x in r {
            x.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
        }
    });
    // The topic's partitions must have leaders before anyone produces.
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    wait_for("topic metadata", Duration::from_secs(30), || {
        c.fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len() as i32 == partitions))
            .unwrap_or(false)
    });
}

/// One record per batch for the tests that restart or rebalance: tansu 0.6.0 returns nothing for a fetch that
/// starts inside a record batch (checked here: 1,000 records in one batch,
/// a fetch from offset 500 gets no record, where Kafka returns the batch and
/// the client skips to 500), and vigie resumes at arbitrary offsets after a
/// restart or a rebalance. With one record per batch every offset starts a
/// batch. The mock-cluster tests keep librdkafka's default batching.
pub(crate) fn producer(brokers: &str, one_per_batch: bool) -> BaseProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    if one_per_batch {
        c.set("linger.ms", "0").set("batch.num.messages", "1");
    }
    c.create().unwrap()
}

/// A running `vigie ingest`, killed when dropped (a failing test leaves no
/// process behind).
pub(crate) struct Service(Option<Child>);

impl Service {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start(dir: &Path, config: &Path, name: &str) -> Service {
    start_with(dir, config, name, &[])
}

pub(crate) fn start_with(dir: &Path, config: &Path, name: &str, env: &[(&str, &str)]) -> Service {
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.log"))).unwrap();
    Service(Some(
        vigie()
            .args(["ingest", "--config", config.to_str().unwrap()])
            .env("VIGIE_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    ))
}

pub(crate) fn terminate(mut s: Service) -> std::process::ExitStatus {
    let mut child = s.0.take().expect("running");
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    child.wait().unwrap()
}

pub(crate) fn expected(records: &[Vec<u8>]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| event_id(r)).collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn the_store_holds_the_good_events_once_and_the_dead_letter_topic_the_bad_ones() {
    let Some(brokers) = broker() else { return };
    let (topic, dlq, group) = (unique("events"), unique("events-dlq"), unique("vigie"));
    create_topic(&brokers, &topic, 2);
    create_topic(&brokers, &dlq, 1);
    let mut records = recent_records(15, 5, 21);
    let good = expected(&records);
    records.push(records[10].clone());
    records.extend(BAD_RECORDS.iter().map(|(b, _)| b.as_bytes().to_vec()));
    let p = producer(&brokers, false);
    for (i, r) in records.iter().enumerate() {
        send(&p, &topic, (i % 2) as i32, r);
    }
    p.flush(Duration::from_secs(300)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = dir.path().join("vigie.toml");
    let extra = format!("dead_letter_topic = \"{dlq}\"");
    std::fs::write(&cfg, service_toml(&brokers, &topic, &group, &store, &extra)).unwrap();
    let child = start(dir.path(), &cfg, "ingest");
    let total = records.len() as i64;
    wait_for("every offset committed", Duration::from_secs(120), || {
        committed_total(&brokers, &group, &topic, 2) == total
    });
    let status = terminate(child);
    let log = std::fs::read_to_string(dir.path().join("ingest.log")).unwrap();
    assert!(status.success(), "exit {status:?}\n{log}");
    // The log names rejects by coordinates and reason, never by content.
    assert!(log.contains("Record rejected"), "{log}");
    for content in ["SECRET-", "coffee", "2099-03-03"] {
        assert!(!log.contains(content), "record content {content:?} in the log:\n{log}");
    }

    let (ids, rows) = raw_event_ids(&store);
    assert_eq!(rows, good.len(), "each good event exactly once");
    assert_eq!(ids, good);
    assert!(!store.join("dead-letter").exists(), "a dead-letter topic was configured");

    // The dead-letter topic: exactly the bad records, with their
    // coordinates as headers, and no worker value as received.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&dlq, 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let end = std::time::Instant::now() + Duration::from_secs(20);
    while got.len() < BAD_RECORDS.len() && std::time::Instant::now() < end {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(500)) {
            let h = m.headers().unwrap();
            let header = |k: &str| {
                h.iter()
                    .find(|x| x.key == k)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).to_string())
            };
            got.push((
                header("vigie-reason").unwrap(),
                header("vigie-source-topic").unwrap(),
                header("vigie-source-partition").unwrap().parse::<i32>().unwrap(),
                header("vigie-source-offset").unwrap().parse::<i64>().unwrap(),
                header("vigie-source-epoch").unwrap().parse::<u32>().unwrap(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string(),
            ));
        }
    }
    // Nothing more arrives.
    assert!(c.poll(Duration::from_secs(2)).is_none(), "more dead letters than bad records");
    let mut reasons: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    reasons.sort_unstable();
    let mut want: Vec<&str> = BAD_RECORDS.iter().map(|(_, r)| *r).collect();
    want.sort_unstable();
    assert_eq!(reasons, want);
    for (_, t, part, off, epoch, payload) in &got {
        assert_eq!(t, &topic);
        assert_eq!(*epoch, 0);
        assert!((0..2).contains(part) && *off >= 0);
        assert!(
            !payload.contains("SECRET-"),
            "a received worker value reached the dead-letter topic: {payload}"
        );
    }
}

#[test]
fn kill_9_at_random_points_loses_nothing_and_stores_nothing_twice() {
    let Some(brokers) = broker() else { return };
    let (topic, group) = (unique("events"), unique("vigie"));
    create_topic(&brokers, &topic, 3);
    let records = Arc::new(recent_records(8, 5, 33));
    let good = expected(&records);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = dir.path().join("vigie.toml");
    // A short session, so that each kill's member is out of the group soon
    // (see below).
    let session = Duration::from_millis(3000);
    std::fs::write(
        &cfg,
        service_toml_session(&brokers, &topic, &group, &store, "", session.as_millis() as u64),
    )
    .unwrap();

    // The producer runs through all the kills, at a steady pace (about 45 s
    // for the 110 chunks).
    let done = Arc::new(AtomicBool::new(false));
    let prod = {
        let (brokers, topic, records, done) = (brokers.clone(), topic.clone(), records.clone(), done.clone());
        std::thread::spawn(move || {
            let p = producer(&brokers, true);
            for (i, chunk) in records.chunks(500).enumerate() {
                for (j, r) in chunk.iter().enumerate() {
                    send(&p, &topic, ((i * 500 + j) % 3) as i32, r);
                }
                p.poll(Duration::ZERO);
                std::thread::sleep(Duration::from_millis(400));
            }
            p.flush(Duration::from_secs(300)).unwrap();
            done.store(true, Ordering::SeqCst);
        })
    };
    let seed: u64 = rand::random();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    eprintln!("kill -9 schedule seed: {seed}");
    // First, a crash inside a flush: the process aborts itself at the
    // 13th step of the store (each flush counts a write and a rename per
    // file, the dead letters, the checkpoint's write and rename), so with
    // the first flushes holding several files, between two renames or
    // between the last rename and the checkpoint.
    let mut child = start_with(dir.path(), &cfg, "ingest", &[("VIGIE_TEST_STORE_FAULT", "abort:13")]);
    let end = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.child().try_wait().unwrap() {
            break st;
        }
        assert!(std::time::Instant::now() < end, "the injected crash never came");
        std::thread::sleep(Duration::from_millis(50));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(6), "aborted by the injected crash: {status:?}");
    eprintln!("injected crash: {} rows stored", raw_event_ids(&store).1);
    // The killed members never leave the group. tansu (0.6.0) evicts a
    // member whose session has ended only when another request reaches the
    // group, and one evicted on a heartbeat keeps its partitions, assigned
    // to nobody, without a new rebalance: a member that joins within the
    // session of a killed one can be given no partition for good (seen in
    // about one run in seven). A join after the session has ended evicts
    // the dead and is given every partition, so each instance starts once
    // the last one's session is over. (Apache Kafka rebalances the group
    // itself when a session ends.)
    let restart = || std::thread::sleep(session + Duration::from_millis(500));
    for round in 0..5 {
        // Killed at a random point while it consumes: 0 to 2.5 s after it
        // was given partitions (or after 20 s when it was given none).
        restart();
        let name = format!("round{round}");
        let mut child = start(dir.path(), &cfg, &name);
        let log = dir.path().join(format!("{name}.log"));
        let given = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < given
            && !assigned(&std::fs::read_to_string(&log).unwrap_or_default())
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = Duration::from_millis(rng.gen_range(0..2500));
        std::thread::sleep(after);
        child.child().kill().unwrap(); // SIGKILL: no flush, no commit
        child.child().wait().unwrap();
        let held = std::fs::read_to_string(&log).unwrap_or_default().lines().filter(|l| assigned(l)).count();
        eprintln!(
            "round {round}: killed {after:?} after {held} partitions were given to it, {} rows stored",
            raw_event_ids(&store).1
        );
    }

    prod.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    restart();
    let child = start(dir.path(), &cfg, "last");
    let total = records.len() as i64;
    let end = std::time::Instant::now() + Duration::from_secs(180);
    while committed_total(&brokers, &group, &topic, 3) != total {
        if std::time::Instant::now() > end {
            // What the last instance did, to tell a slow group from a stall.
            let log = std::fs::read_to_string(dir.path().join("last.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().filter(|l| !l.contains("Analysis done")).collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            panic!(
                "timed out waiting for every offset committed after the last restart: {} of {total}, {} rows stored; the log's end:\n{}",
                committed_total(&brokers, &group, &topic, 3),
                raw_event_ids(&store).1,
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = terminate(child);
    assert!(status.success(), "{:?}", std::fs::read_to_string(dir.path().join("last.log")));
    assert_eq!(range_problems(&store, &topic), Vec::<String>::new());
    let (ids, rows) = raw_event_ids(&store);
    assert_eq!(
        rows,
        good.len(),
        "{} rows for {} events: something was stored twice or lost",
        rows,
        good.len()
    );
    assert_eq!(ids, good);
    // Every visible file was readable above; the temporaries of the killed
    // runs were swept at the next start.
    assert!(vigie_ingest::store::temporaries(&store).is_empty());
}

/// Whether a service's log shows a partition assigned to it: with a
/// durable point ("Partition assigned") or without one, when both
/// instances join before anything was stored ("No durable point ...").
pub(crate) fn assigned(log: &str) -> bool {
    log.contains("Partition assigned") || log.contains("No durable point in the store nor in the group")
}

#[test]
fn two_instances_split_four_partitions_and_store_each_event_once() {
    two_instances_split(&Backend::Folder);
}

/// The same with a store in a bucket of the S3 server: the instances share
/// nothing but the broker and the bucket (and the key).
#[test]
fn two_instances_with_a_store_in_a_bucket_split_four_partitions_and_store_each_event_once() {
    if let Some(loc) = s3_location("two-instances") {
        two_instances_split(&Backend::S3(loc));
    }
}

fn two_instances_split(backend: &Backend) {
    let Some(brokers) = broker() else { return };
    let (topic, group) = (unique("events"), unique("vigie"));
    create_topic(&brokers, &topic, 4);
    let records = recent_records(8, 4, 44);
    let good = expected(&records);
    let (first, second) = records.split_at(records.len() / 5);
    let p = producer(&brokers, true);
    for (i, r) in first.iter().enumerate() {
        send(&p, &topic, (i % 4) as i32, r);
    }
    p.flush(Duration::from_secs(300)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = dir.path().join("vigie.toml");
    let mut toml = service_toml(&brokers, &topic, &group, &store, "");
    let mut env = Vec::new();
    if let Backend::S3(loc) = backend {
        let key = key_file(dir.path());
        let s3 = format!(
            "path = \"s3://{}/{}\"\ns3_endpoint = \"{}\"\ns3_region = \"us-east-1\"\ns3_allow_http = true\nkey_file = \"{}\"",
            loc.bucket,
            loc.prefix,
            loc.endpoint.clone().unwrap(),
            key.display()
        );
        toml = toml.replace(&format!("path = \"{}\"", store.display()), &s3);
        let (id, secret) = loc.credentials.clone().unwrap();
        env = vec![("AWS_ACCESS_KEY_ID", id), ("AWS_SECRET_ACCESS_KEY", secret)];
    }
    std::fs::write(&cfg, toml).unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a = start_with(dir.path(), &cfg, "a", &env);
    let b = start_with(dir.path(), &cfg, "b", &env);
    let pids = [a.0.as_ref().unwrap().id(), b.0.as_ref().unwrap().id()];
    let log = |n: &str| std::fs::read_to_string(dir.path().join(format!("{n}.log"))).unwrap_or_default();
    // Once both have been assigned partitions, the group's generation holds
    // both: the rest of the stream is split between them.
    let both = || assigned(&log("a")) && assigned(&log("b"));
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while !both() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(both(), "both instances assigned partitions:\na:\n{}\nb:\n{}", log("a"), log("b"));
    for (i, r) in second.iter().enumerate() {
        send(&p, &topic, (i % 4) as i32, r);
    }
    p.flush(Duration::from_secs(300)).unwrap();
    let total = records.len() as i64;
    wait_for("every offset committed", Duration::from_secs(180), || {
        committed_total(&brokers, &group, &topic, 4) == total
    });
    // One instance holds the analysis lease: it analyses and publishes the
    // findings; the other only ingests.
    const WRITER: &str = "This instance is the analysis writer";
    wait_for("an analysis written", Duration::from_secs(30), || {
        ["a", "b"].iter().any(|n| log(n).contains("Analysis done"))
    });
    let writers: Vec<&str> = ["a", "b"].into_iter().filter(|n| log(n).contains(WRITER)).collect();
    assert_eq!(writers.len(), 1, "one analysis writer:\na:\n{}\nb:\n{}", log("a"), log("b"));
    let (first, other) = if writers[0] == "a" { (a, b) } else { (b, a) };
    let (writer, reader) = if writers[0] == "a" { ("a", "b") } else { ("b", "a") };
    assert!(log(writer).contains("Analysis done"), "{writer}:\n{}", log(writer));
    assert!(!log(reader).contains("Analysis done"), "{reader} analysed too:\n{}", log(reader));
    // The writer stops and lets the lease go: the other takes it at its
    // next renewal (a third of an interval), not after a term, and analyses.
    let s = terminate(first);
    assert!(s.success(), "{writer}: {s:?}\n{}", log(writer));
    // (Within a third of an interval it holds the lease; its first cycle
    // over a bucket also copies the raw tier: 30 s on a loaded machine.)
    wait_for("the other instance analyses", Duration::from_secs(30), || {
        log(reader).contains(WRITER) && log(reader).contains("Analysis done")
    });
    let s = terminate(other);
    assert!(s.success(), "{reader}: {s:?}\n{}", log(reader));
    // On failure, what each instance said of its partitions.
    let said = |n: &str| {
        log(n)
            .lines()
            .filter(|l| {
                ["WARN", "ERROR", "assigned", "revoked", "backwards", "Another instance"]
                    .iter()
                    .any(|w| l.contains(w))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let store = backend.contents(&store, &dir.path().join("copy"));
    assert_eq!(range_problems(&store, &topic), Vec::<String>::new(), "a:\n{}\nb:\n{}", said("a"), said("b"));
    let (ids, rows) = raw_event_ids(&store);
    assert_eq!(rows, good.len());
    assert_eq!(ids, good);
    // Both took part: each was assigned partitions and stored events.
    for name in ["a", "b"] {
        let log = log(name);
        assert!(assigned(&log), "{name} was never assigned a partition:\n{log}");
        let accepted = log
            .lines()
            .rev()
            .find(|l| l.contains("Stopped"))
            .and_then(|l| l.split("accepted=").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(accepted > 0, "{name} stored nothing:\n{log}");
    }
    if let Backend::S3(loc) = backend {
        // The analysis wrote its outputs to the bucket, and the local copy
        // it read from went with each instance.
        let b = vigie_ingest::store::bucket::Bucket::open(loc, "checker").unwrap();
        let findings = b.get("findings.json").unwrap().expect("findings.json in the bucket");
        let findings: serde_json::Value = serde_json::from_slice(&findings).unwrap();
        let files = findings["input"]["files"].to_string();
        assert!(files.contains(&format!("s3://{}/{}", loc.bucket, loc.prefix)), "{files}");
        // (No aggregates: eight workers over four sites is under k.)
        for tier in ["summaries", "dated"] {
            assert!(!b.list(tier).unwrap().is_empty(), "no {tier} in the bucket");
        }
        for pid in pids {
            let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("vigie-stage-{pid}-")))
                .collect();
            assert!(left.is_empty(), "a local copy of the bucket left behind: {left:?}");
        }
    }
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A broker of the test's own (tansu, memory storage), so that the test
/// can restart it empty: a source that loses its state.
struct OwnBroker {
    port: u16,
    child: Option<Child>,
}

impl OwnBroker {
    fn start(port: u16, log: &Path) -> OwnBroker {
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = std::process::Command::new("tansu")
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/", "--silent"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tansu on PATH (scripts/test.sh installs it)");
        wait_for("the broker's port", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        OwnBroker { port, child: Some(child) }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn metrics_text(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[test]
fn a_source_that_lost_its_state_is_detected_and_both_incarnations_are_stored_once() {
    if !common::needs_all(&[common::Tool::Tansu, common::Tool::Kill]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = OwnBroker::start(port, &dir.path().join("broker.log"));
    let brokers = broker.address();
    let (topic, group) = (unique("events"), unique("vigie"));
    let records = recent_records(8, 5, 61);
    // First incarnation: 40 % of the records, partition 1 more than 0.
    let (old, new) = records.split_at(records.len() * 2 / 5);
    let old_parts = |i: usize| if i.is_multiple_of(3) { 0 } else { 1 };
    create_topic(&brokers, &topic, 2);
    let p = producer(&brokers, true);
    for (i, r) in old.iter().enumerate() {
        send(&p, &topic, old_parts(i), r);
    }
    p.flush(Duration::from_secs(300)).unwrap();
    drop(p);
    let store = dir.path().join("store");
    let cfg = dir.path().join("vigie.toml");
    let metrics_port = free_port();
    std::fs::write(
        &cfg,
        service_toml(&brokers, &topic, &group, &store, "")
            .replace("127.0.0.1:0", &format!("127.0.0.1:{metrics_port}")),
    )
    .unwrap();
    let child = start(dir.path(), &cfg, "first");
    wait_for("the first incarnation committed", Duration::from_secs(120), || {
        committed_total(&brokers, &group, &topic, 2) == old.len() as i64
    });
    assert!(terminate(child).success());

    // The broker loses its state; the topic comes back with other records:
    // partition 0 grows past the old offsets (only the record at the
    // checkpoint tells), partition 1 stays below them (the high watermark
    // tells).
    broker.stop();
    let broker = OwnBroker::start(port, &dir.path().join("broker.log"));
    create_topic(&brokers, &topic, 2);
    let old0 = (0..old.len()).filter(|i| old_parts(*i) == 0).count();
    let p = producer(&brokers, true);
    let (new0, new1) = new.split_at(old0 + 50);
    for r in new0 {
        send(&p, &topic, 0, r);
    }
    let new1 = &new1[..new1.len().min(old.len() - old0 - 100)];
    for r in new1 {
        send(&p, &topic, 1, r);
    }
    p.flush(Duration::from_secs(300)).unwrap();
    let child = start(dir.path(), &cfg, "second");
    let total_new = (new0.len() + new1.len()) as i64;
    wait_for("the second incarnation committed", Duration::from_secs(120), || {
        committed_total(&brokers, &group, &topic, 2) == total_new
    });
    let m = metrics_text(metrics_port, "/metrics");
    assert_eq!(metric(&m, &format!("vigie_source_resets_total{{topic=\"{topic}\"}}")), Some(2.0), "{m}");
    assert!(terminate(child).success());
    drop(broker);

    let log = std::fs::read_to_string(dir.path().join("second.log")).unwrap();
    assert!(log.contains("partition ends at"), "the watermark check:\n{log}");
    assert!(log.contains("is not the one stored there"), "the record check:\n{log}");
    let mut want = expected(old);
    want.extend(expected(new0));
    want.extend(expected(new1));
    want.sort();
    let (ids, rows) = raw_event_ids(&store);
    assert_eq!(rows, want.len(), "each event of both incarnations exactly once");
    assert_eq!(ids, want);
    for p in 0..2 {
        let ck = vigie_ingest::store::read_checkpoint(&store, &topic, p).best.unwrap();
        assert_eq!(ck.epoch, 1, "partition {p}: a new incarnation");
    }
}

#[test]
fn with_on_source_reset_stop_vigie_holds_the_partition_stays_up_and_says_so() {
    if !common::needs_all(&[common::Tool::Tansu, common::Tool::Kill]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = OwnBroker::start(port, &dir.path().join("broker.log"));
    let brokers = broker.address();
    let (topic, group) = (unique("events"), unique("vigie"));
    let records = recent_records(4, 2, 62);
    create_topic(&brokers, &topic, 1);
    let p = producer(&brokers, true);
    for r in &records {
        send(&p, &topic, 0, r);
    }
    p.flush(Duration::from_secs(300)).unwrap();
    drop(p);
    let store = dir.path().join("store");
    let cfg = dir.path().join("vigie.toml");
    let metrics_port = free_port();
    let text = service_toml(&brokers, &topic, &group, &store, "on_source_reset = \"stop\"")
        .replace("127.0.0.1:0", &format!("127.0.0.1:{metrics_port}"));
    std::fs::write(&cfg, text).unwrap();
    let child = start(dir.path(), &cfg, "first");
    wait_for("committed", Duration::from_secs(120), || {
        committed_total(&brokers, &group, &topic, 1) == records.len() as i64
    });
    assert!(terminate(child).success());
    let before = raw_event_ids(&store);

    broker.stop();
    let _broker = OwnBroker::start(port, &dir.path().join("broker.log"));
    create_topic(&brokers, &topic, 1);
    let p = producer(&brokers, true);
    for r in &records[..10] {
        send(&p, &topic, 0, r);
    }
    p.flush(Duration::from_secs(60)).unwrap();
    let mut child = start(dir.path(), &cfg, "second");
    wait_for("the reset reported", Duration::from_secs(60), || {
        metric(
            &metrics_text(metrics_port, "/metrics"),
            &format!("vigie_source_reset_blocked_partitions{{topic=\"{topic}\"}}"),
        ) == Some(1.0)
    });
    let ready = metrics_text(metrics_port, "/ready");
    assert!(ready.starts_with("HTTP/1.1 503") && ready.contains("source reset"), "{ready}");
    // Up, and nothing of the new incarnation taken.
    std::thread::sleep(Duration::from_secs(2));
    assert!(child.child().try_wait().unwrap().is_none(), "vigie stayed up");
    assert_eq!(raw_event_ids(&store), before);
    assert!(terminate(child).success());
}

/// A small file system of the test's own (tmpfs; root only), unmounted
/// when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(path).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", path.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success(), "mount a tmpfs (the tests run as root in CI)");
        SmallDisk(path.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}"), self.0.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_pauses_ingestion_and_it_resumes_by_itself_when_room_comes_back() {
    let Some(brokers) = broker() else { return };
    if common::needs(common::Tool::Root).is_none() {
        return;
    }
    let (topic, group) = (unique("events"), unique("vigie"));
    create_topic(&brokers, &topic, 3);
    let records = recent_records(10, 6, 63);
    let good = expected(&records);
    // One record per batch: vigie pauses and resumes mid-batch, and tansu
    // 0.6.0 skips the rest of a batch fetched from its middle (see
    // `producer`).
    let p = producer(&brokers, true);
    for (i, r) in records.iter().enumerate() {
        send(&p, &topic, (i % 3) as i32, r);
    }
    p.flush(Duration::from_secs(300)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&dir.path().join("disk"), "512k");
    let store = dir.path().join("disk/store");
    let cfg = dir.path().join("vigie.toml");
    let metrics_port = free_port();
    let text =
        service_toml(&brokers, &topic, &group, &store, "max_batch_events = 500\nmax_retry_backoff_ms = 500")
            .replace("max_batch_events = 2000\n", "")
            .replace("127.0.0.1:0", &format!("127.0.0.1:{metrics_port}"));
    std::fs::write(&cfg, text).unwrap();
    let mut child = start(dir.path(), &cfg, "ingest");
    let scrape = || metrics_text(metrics_port, "/metrics");
    wait_for("the store full", Duration::from_secs(120), || {
        metric(&scrape(), "vigie_store_writable") == Some(0.0)
    });
    // While full: nothing committed beyond what the store holds, for a
    // while, and the failure visible.
    for _ in 0..5 {
        for part in 0..3 {
            let committed = {
                use rdkafka::consumer::{BaseConsumer, Consumer};
                let c: BaseConsumer = ClientConfig::new()
                    .set("bootstrap.servers", &brokers)
                    .set("group.id", &group)
                    .create()
                    .unwrap();
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&topic, part);
                c.committed_offsets(tpl, Duration::from_secs(5)).unwrap().elements()[0]
                    .offset()
                    .to_raw()
                    .unwrap_or(-1)
            };
            let durable = vigie_ingest::store::durable_offset(&store, &topic, part).unwrap_or(-1);
            assert!(
                committed <= durable + 1,
                "partition {part}: committed {committed}, durable up to {durable}"
            );
        }
        std::thread::sleep(Duration::from_millis(400));
    }
    let m = scrape();
    assert!(metric(&m, "vigie_store_write_failures_total{stage=\"flush\"}").unwrap_or(0.0) >= 1.0, "{m}");
    assert!(metrics_text(metrics_port, "/readyz").starts_with("HTTP/1.1 503"));
    assert!(committed_total(&brokers, &group, &topic, 3) < records.len() as i64);

    // Room comes back: no restart.
    disk.grow("64m");
    wait_for("every offset committed after the disk grew", Duration::from_secs(180), || {
        committed_total(&brokers, &group, &topic, 3) == records.len() as i64
    });
    assert!(child.child().try_wait().unwrap().is_none(), "the same process went on");
    assert_eq!(metric(&scrape(), "vigie_store_writable"), Some(1.0));
    // Ready again for an orchestrator: a member of the group, the store
    // writable.
    assert_eq!(metric(&scrape(), "vigie_consumer_group_joined"), Some(1.0));
    assert!(metrics_text(metrics_port, "/readyz").starts_with("HTTP/1.1 200"));
    let status = terminate(child);
    let log = std::fs::read_to_string(dir.path().join("ingest.log")).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("pausing consumption"), "{log}");
    assert!(log.contains("takes writes again"), "{log}");
    let (ids, rows) = raw_event_ids(&store);
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    assert_eq!(rows, good.len(), "each event exactly once; the log's warnings:\n{}", warnings.join("\n"));
    assert_eq!(ids, good);
    assert_eq!(range_problems(&store, &topic), Vec::<String>::new());
    assert!(vigie_ingest::store::temporaries(&store).is_empty());
    drop(disk);
}
