//! The service against librdkafka's in-process mock cluster: commit
//! semantics, the store as the durable point when commits fail, broker
//! errors and a rebalance between two members of one group. These run
//! everywhere (no broker to install).

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;
use vigie::metrics::Metrics;
use vigie::service::{self, config};

fn produce(brokers: &str, topic: &str, records: &[Vec<u8>], partitions: i32) {
    let p: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for (i, r) in records.iter().enumerate() {
        send(&p, topic, (i as i32) % partitions, r);
    }
    p.flush(Duration::from_secs(30)).unwrap();
    // The mock broker keeps at most 5 MiB per partition and trims the
    // oldest messages past that: the inputs must stay below it.
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for part in 0..partitions {
        let (low, _) = c.fetch_watermarks(topic, part, Duration::from_secs(5)).unwrap();
        assert_eq!(low, 0, "the mock broker trimmed partition {part}: produce less");
    }
}

fn load_cfg(dir: &Path, text: &str) -> config::Config {
    let p = dir.join("vigie.toml");
    std::fs::write(&p, text).unwrap();
    config::load(&p, std::iter::empty()).unwrap()
}

struct Running {
    stop: vigie::shutdown::Shutdown,
    task: tokio::task::JoinHandle<Result<vigie_ingest::kafka::RunSummary, vigie_ingest::kafka::ServiceError>>,
    metrics: Arc<Metrics>,
}

fn start(cfg: config::Config) -> Running {
    let stop = vigie::shutdown::Shutdown::new();
    let metrics = Arc::new(Metrics::new(10_000));
    let task = tokio::spawn(service::run(cfg, metrics.clone(), stop.clone()));
    Running { stop, task, metrics }
}

impl Running {
    async fn stop(self) -> vigie_ingest::kafka::RunSummary {
        self.stop.trigger();
        self.task.await.unwrap().unwrap()
    }
}

async fn wait_async(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < end {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn expected_ids(records: &[Vec<u8>]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| event_id(r)).collect();
    ids.sort();
    ids.dedup();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_events_are_stored_once_bad_ones_dead_lettered_and_offsets_committed() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("events", 2, 1).unwrap();
    let mut records = recent_records(6, 2, 7);
    let good = expected_ids(&records);
    // One record twice (the door drops it), and the bad ones.
    records.push(records[5].clone());
    for (bad, _) in BAD_RECORDS {
        records.push(bad.as_bytes().to_vec());
    }
    produce(&brokers, "events", &records, 2);

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = load_cfg(dir.path(), &service_toml(&brokers, "events", "g1", &store, ""));
    let run = start(cfg);
    let total = records.len() as i64;
    wait_async("every offset committed", 60, || committed_total(&brokers, "g1", "events", 2) == total).await;
    let ingested = run.metrics.events_ingested.get();
    let summary = run.stop().await;
    eprintln!("summary: {summary:?}, ingested metric {ingested}");

    let (ids, rows) = raw_event_ids(&store);
    assert_eq!(rows, good.len(), "each good event stored once");
    assert_eq!(ids, good);
    assert_eq!(summary.accepted as usize, good.len());
    assert_eq!(summary.duplicates, 1);
    assert_eq!(summary.rejected as usize, BAD_RECORDS.len());
    assert_eq!(ingested as usize, good.len());

    // The local dead-letter store holds exactly the bad records, with
    // their coordinates and reason, and never the worker value received.
    let dl =
        std::fs::read_dir(store.join("dead-letter")).unwrap().flatten().map(|e| e.path()).collect::<Vec<_>>();
    assert_eq!(dl.len(), 1);
    let text = std::fs::read_to_string(&dl[0]).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), BAD_RECORDS.len());
    let mut reasons: Vec<&str> = lines.iter().map(|l| l["reason"].as_str().unwrap()).collect();
    reasons.sort_unstable();
    let mut want: Vec<&str> = BAD_RECORDS.iter().map(|(_, r)| *r).collect();
    want.sort_unstable();
    assert_eq!(reasons, want);
    for l in &lines {
        assert_eq!(l["source"]["topic"], "events");
        assert_eq!(l["source"]["epoch"], 0, "the partition's incarnation");
        assert!(l["source"]["offset"].as_i64().unwrap() >= 0);
    }
    assert!(!text.contains("SECRET-"), "a received worker value reached the dead-letter store");

    // Raw file names carry the partition and offset range they hold.
    for f in vigie_ingest::store::files_under(&store.join("raw"), "parquet") {
        let name = f.file_name().unwrap().to_str().unwrap();
        let (topic, p, first, last) = vigie_ingest::store::parse_raw_name(name).unwrap();
        assert_eq!(topic, "events");
        assert!((0..2).contains(&p) && first <= last, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_commits_fail_the_store_still_knows_what_is_durable() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("events", 1, 1).unwrap();
    let records = recent_records(8, 2, 11);
    let good = expected_ids(&records);
    produce(&brokers, "events", &records, 1);
    // Every commit of the first run fails (a non-retriable error), as if the
    // process died after its files were renamed and before Kafka heard of it.
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE; 200],
    );

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = load_cfg(dir.path(), &service_toml(&brokers, "events", "g2", &store, ""));
    let run = start(cfg.clone());
    wait_async("every event stored", 60, || raw_event_ids(&store).1 == good.len()).await;
    run.stop().await;
    assert!(committed_total(&brokers, "g2", "events", 1) < records.len() as i64, "commits were refused");

    // Second run, commits work again: it starts at the store's durable
    // point, so nothing is stored twice, and it commits that point when
    // the partition is assigned, while running, with no new message (the
    // group's commit is no longer behind the store until the next flush).
    cluster.clear_request_errors(RDKafkaApiKey::OffsetCommit);
    let run = start(cfg);
    let total = records.len() as i64;
    wait_async("the durable point committed at assignment", 30, || {
        committed_total(&brokers, "g2", "events", 1) == total
    })
    .await;
    let summary = run.stop().await;
    assert_eq!(summary.accepted, 0, "the second run re-read records the store already held");
    let (ids, rows) = raw_event_ids(&store);
    assert_eq!(rows, good.len());
    assert_eq!(ids, good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_share_the_partitions_and_store_each_event_once() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("events", 4, 1).unwrap();
    let records = recent_records(12, 4, 3);
    let good = expected_ids(&records);
    let (first, second) = records.split_at(records.len() / 2);
    produce(&brokers, "events", first, 4);

    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let a = start(load_cfg(dir.path(), &service_toml(&brokers, "events", "g3", &store, "")));
    wait_async("member A stored something", 60, || raw_event_ids(&store).1 > 0).await;
    // B joins: A's partitions are revoked (flushed, committed), then split.
    let dir_b = tempfile::tempdir().unwrap();
    let b = start(load_cfg(dir_b.path(), &service_toml(&brokers, "events", "g3", &store, "")));
    // Once B owns partitions (its lag gauge has series), the rest arrives.
    let owns =
        |m: &Metrics| m.render().lines().filter(|l| l.starts_with("vigie_consumer_lag_messages{")).count();
    wait_async("member B assigned partitions", 60, || owns(&b.metrics) > 0).await;
    produce(&brokers, "events", second, 4);
    let total = records.len() as i64;
    wait_async("every offset committed", 90, || committed_total(&brokers, "g3", "events", 4) == total).await;
    let sa = a.stop().await;
    let sb = b.stop().await;
    assert!(sa.accepted > 0 && sb.accepted > 0, "both members consumed: {} and {}", sa.accepted, sb.accepted);
    let (ids, rows) = raw_event_ids(&store);
    assert_eq!(rows, good.len(), "an event was stored twice or lost");
    assert_eq!(ids, good);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_file_is_quarantined_counted_and_reported_and_the_rest_is_analysed() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("events", 1, 1).unwrap();
    let records = recent_records(6, 2, 17);
    produce(&brokers, "events", &records, 1);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    // Damage waiting in the store before the service starts: a truncated
    // raw file and an empty one of another topic's partition.
    let day = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let name = |first| vigie_ingest::store::RawName {
        topic: "older".into(),
        epoch: 0,
        partition: 0,
        first,
        last: first + 9,
    };
    let truncated = vigie_ingest::store::raw_file(&store, "lyon-1", day, &name(0));
    std::fs::create_dir_all(truncated.parent().unwrap()).unwrap();
    std::fs::write(&truncated, b"PAR1\x15\x04\x15\x10 cut short").unwrap();
    let empty = vigie_ingest::store::raw_file(&store, "lyon-1", day, &name(10));
    std::fs::write(&empty, b"").unwrap();
    let run = start(load_cfg(dir.path(), &service_toml(&brokers, "events", "g5", &store, "")));
    wait_async("an analysis with the stored events", 90, || {
        std::fs::read_to_string(store.join("findings.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|f| f["findings"].as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let text = run.metrics.render();
    for reason in ["not_parquet", "empty"] {
        let series = format!("vigie_store_quarantined_files_total{{reason=\"{reason}\",tier=\"raw\"}} 1");
        assert!(text.contains(&series), "{series} missing:\n{text}");
    }
    run.stop().await;
    assert!(!truncated.exists() && !empty.exists());
    let q = store.join("quarantine").join(truncated.strip_prefix(&store).unwrap());
    assert!(q.exists(), "{}", q.display());
    let f: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(store.join("findings.json")).unwrap()).unwrap();
    let inc = f["incomplete"].as_array().expect("findings.json lists what is missing");
    let files: u64 = inc.iter().map(|i| i["files"].as_u64().unwrap()).sum();
    assert_eq!(files, 2, "{inc:?}");
    assert_eq!(inc[0]["date"], day.to_string());
    // Its provenance: the service key's fingerprint (64 hex digits, not
    // the key) and the offsets of the topic it read.
    let fp = f["provenance"]["key_fingerprint"].as_str().unwrap();
    assert!(fp.len() == 64 && fp.bytes().all(|b| b.is_ascii_hexdigit()), "{fp}");
    let streams = f["provenance"]["streams"].as_array().unwrap();
    assert!(streams.iter().any(|s| s["topic"] == "events" && s["first_offset"] == 0), "{streams:?}");
    // The check at start quarantined them: the analysis never failed.
    assert!(text.contains("vigie_analysis_failures_total 0"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_read_through_a_mapping_stores_the_events_of_the_contract() {
    // A vendor's JSON messages (its own keys, a nested worker key, epoch
    // milliseconds, vendor codes) on one topic, read through the mapping
    // named for that topic: the events stored are those of the contract
    // records; a code without a kind is counted, not dead-lettered; a bad
    // time is dead-lettered with the worker value pseudonymised.
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("vendor", 2, 1).unwrap();
    let contract = recent_records(6, 2, 9);
    let good = expected_ids(&contract);
    let mut records: Vec<Vec<u8>> = contract.iter().map(|r| vendor_json(r)).collect();
    records.push(br#"{"TxnId":"inv-1","Horodatage":1792900000000,"Depot":"lyon-1","Qui":{"code":"SECRET-A"},"Code":"INVENTAIRE"}"#.to_vec());
    records.push(br#"{"TxnId":"bad-1","Horodatage":"hier","Depot":"lyon-1","Qui":{"code":"SECRET-B"},"Code":"PICK_CONFIRM"}"#.to_vec());
    produce(&brokers, "vendor", &records, 2);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vendor.toml"), vendor_mapping()).unwrap();
    let store = dir.path().join("store");
    let cfg = load_cfg(
        dir.path(),
        &service_toml(&brokers, "vendor", "g-map", &store, "mappings = { vendor = \"vendor.toml\" }"),
    );
    assert_eq!(cfg.kafka.loaded_mappings["vendor"].0.name, "vendor-json");
    let run = start(cfg);
    let total = records.len() as i64;
    wait_async("every offset committed", 60, || committed_total(&brokers, "g-map", "vendor", 2) == total)
        .await;
    let unmapped = run.metrics.events_unmapped.with_label_values(&["vendor"]).get();
    let summary = run.stop().await;
    let (ids, rows) = raw_event_ids(&store);
    assert_eq!((ids, rows), (good.clone(), good.len()));
    assert_eq!(unmapped, 1);
    assert_eq!(summary.rejected, 1);
    let dl = vigie_ingest::store::files_under(&store.join("dead-letter"), "ndjson");
    let text: String = dl.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    assert!(text.contains("invalid_timestamp"), "{text}");
    assert!(!text.contains("SECRET-"), "a received worker value reached the dead-letter store: {text}");
}

#[test]
fn a_mapping_for_a_topic_not_read_or_a_bad_mapping_is_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "name = \"b\"\n[fields]\nts = { column = \"t\" }\n").unwrap();
    let p = dir.path().join("vigie.toml");
    std::fs::write(
        &p,
        service_toml(
            "127.0.0.1:1",
            "events",
            "g",
            &dir.path().join("store"),
            "mappings = { other = \"bad.toml\", events = \"missing.toml\" }",
        ),
    )
    .unwrap();
    let problems = config::load(&p, std::iter::empty()).unwrap_err();
    let all = problems.join("\n");
    assert!(all.contains("kafka.mappings.\"other\" is not one of kafka.topics"), "{all}");
    assert!(all.contains("fields.worker is required"), "{all}");
    assert!(all.contains("missing.toml"), "{all}");
}
