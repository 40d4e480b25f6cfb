//! Helpers for bench/ingest.sh, on the same librdkafka as vigie:
//!
//! - `produce BROKERS TOPIC PARTITIONS FILE`: creates the topic and sends
//!   every line of an NDJSON file, round-robin over its partitions;
//! - `count BROKERS TOPIC`: the ceiling. A bare consumer in a fresh group
//!   that reads the topic from the start and only counts messages, until it
//!   reaches the high watermarks;
//! - `committed BROKERS GROUP TOPIC`: the group's committed offsets, summed.

use std::io::BufRead;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, TopicPartitionList};

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    match a.first().map(String::as_str) {
        Some("produce") if a.len() == 5 => produce(&a[1], &a[2], a[3].parse().expect("partitions"), &a[4]),
        Some("count") if a.len() == 3 => count(&a[1], &a[2]),
        Some("committed") if a.len() == 4 => println!("{}", committed(&a[1], &a[2], &a[3])),
        _ => {
            eprintln!("usage: kafka_bench produce BROKERS TOPIC PARTITIONS FILE | count BROKERS TOPIC | committed BROKERS GROUP TOPIC");
            std::process::exit(2);
        }
    }
}

fn produce(brokers: &str, topic: &str, partitions: i32, file: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
        let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        for r in admin.create_topics(&[t], &AdminOptions::new()).await.unwrap() {
            r.unwrap_or_else(|(t, e)| panic!("create {t}: {e}"));
        }
    });
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let started = Instant::now();
    let reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(file).unwrap());
    let mut n = 0u64;
    for line in reader.split(b'\n') {
        let line = line.unwrap();
        if line.is_empty() {
            continue;
        }
        let mut rec =
            BaseRecord::<(), [u8]>::to(topic).payload(&line).partition((n % partitions as u64) as i32);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    p.poll(Duration::from_millis(5));
                }
            }
        }
        n += 1;
        if n.is_multiple_of(10_000) {
            p.poll(Duration::ZERO);
        }
    }
    p.flush(Duration::from_secs(600)).unwrap();
    eprintln!("produced {n} messages in {:.1} s", started.elapsed().as_secs_f64());
}

fn count(brokers: &str, topic: &str) {
    let group = format!("bench-count-{}", std::process::id());
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let parts: Vec<i32> =
        md.topics()[0].partitions().iter().map(rdkafka::metadata::MetadataPartition::id).collect();
    let total: i64 = parts
        .iter()
        .map(|p| {
            let (lo, hi) = c.fetch_watermarks(topic, *p, Duration::from_secs(10)).unwrap();
            hi - lo
        })
        .sum();
    let started = Instant::now();
    c.subscribe(&[topic]).unwrap();
    let mut n = 0i64;
    let mut bytes = 0u64;
    while n < total {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(500)) {
            bytes += m.payload_len() as u64;
            n += 1;
        }
    }
    let s = started.elapsed().as_secs_f64();
    println!("{n} messages, {bytes} bytes in {s:.2} s: {:.0} messages/s", n as f64 / s);
}

fn committed(brokers: &str, group: &str, topic: &str) -> i64 {
    let c: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", group).create().unwrap();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition(topic, p.id());
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .map(|t| t.elements().iter().map(|e| e.offset().to_raw().unwrap_or(0).max(0)).sum())
        .unwrap_or(-1)
}
