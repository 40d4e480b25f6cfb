//! Faults between hosts (issue 16, item 4; docs/design.md, "Faults between
//! hosts"). The broker (tansu), the object store (s3s-fs) and two vigie
//! instances each run in a network namespace of their own, joined by two
//! bridges: one to the broker, one to the store. The harness, in the root
//! namespace, produces, cuts links (`ip link set DEV down`), and adds delay
//! and connection resets with TCP proxies of its own on both paths (`tc
//! netem` is not available on the machines this runs on). After each fault,
//! every event produced so far must be in the bucket exactly once, the raw
//! parts' offsets must tile each partition, and there must be one
//! `findings.json`.
//!
//! `bench/faults.sh` runs the long version (`VIGIE_FAULTS_ROUNDS`, more
//! events) and prints the table; CI runs one round.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{self, *};
use crate::service_broker::{assigned, create_topic, expected, producer, unique};
use rdkafka::producer::Producer;

/// The namespaces' and links' prefix (interface names have at most 15
/// characters).
const P: &str = "vgf";
/// The broker's side: the bridge's address (the harness, the proxy) and
/// the broker's.
const K_ROOT: &str = "10.77.1.254";
const K_BROKER: &str = "10.77.1.1";
/// The store's side.
const S_ROOT: &str = "10.77.2.254";
const S_STORE: &str = "10.77.2.1";
/// The session timeout of the instances' group membership.
const SESSION_MS: u64 = 3000;
/// The analysis interval (and the analysis lease's term), seconds.
const INTERVAL_S: u64 = 2;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("the ip program");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// The namespaces, bridges and veth pairs; removed when dropped.
struct Net;

impl Net {
    /// `k` broker, `s` store, `a` and `b` the instances. Each instance has a
    /// link to each bridge, so that it can be cut off one and not the other.
    fn up() -> Net {
        Net::down();
        for ns in ["k", "s", "a", "b"] {
            ip(&["netns", "add", &format!("{P}-{ns}")]);
            ip(&["-n", &format!("{P}-{ns}"), "link", "set", "lo", "up"]);
        }
        for (bridge, addr) in [("k", K_ROOT), ("s", S_ROOT)] {
            let br = format!("{P}{bridge}");
            ip(&["link", "add", &br, "type", "bridge"]);
            ip(&["addr", "add", &format!("{addr}/24"), "dev", &br]);
            ip(&["link", "set", &br, "up"]);
        }
        let links = [
            ("k", "k", K_BROKER),
            ("s", "s", S_STORE),
            ("a", "k", "10.77.1.11"),
            ("a", "s", "10.77.2.11"),
            ("b", "k", "10.77.1.12"),
            ("b", "s", "10.77.2.12"),
        ];
        for (ns, bridge, addr) in links {
            let (outer, inner) = (format!("{P}{ns}{bridge}"), format!("{P}{ns}{bridge}i"));
            ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner]);
            ip(&["link", "set", &inner, "netns", &format!("{P}-{ns}")]);
            ip(&["link", "set", &outer, "master", &format!("{P}{bridge}")]);
            ip(&["link", "set", &outer, "up"]);
            let n = format!("{P}-{ns}");
            ip(&["-n", &n, "addr", "add", &format!("{addr}/24"), "dev", &inner]);
            ip(&["-n", &n, "link", "set", &inner, "up"]);
        }
        Net
    }

    /// Removes what a run (this one, or one that was killed) left.
    fn down() {
        for ns in ["k", "s", "a", "b"] {
            let _ = Command::new("ip").args(["netns", "del", &format!("{P}-{ns}")]).output();
        }
        for link in ["k", "s", "ak", "as", "bk", "bs", "kk", "ss"] {
            let _ = Command::new("ip").args(["link", "del", &format!("{P}{link}")]).output();
        }
    }

    /// Cuts (or restores) instance `ns`'s link to the broker (`k`) or the
    /// store (`s`).
    fn link(ns: &str, bridge: &str, up: bool) {
        ip(&["link", "set", &format!("{P}{ns}{bridge}"), if up { "up" } else { "down" }]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        Net::down();
    }
}

/// What a proxy does to the bytes it forwards: a delay before each chunk,
/// and a chance (per thousand chunks) of resetting the connection.
#[derive(Default)]
struct Harm {
    delay_ms: AtomicU64,
    reset_per_mille: AtomicU32,
    resets: AtomicU64,
    stop: AtomicBool,
}

/// A TCP proxy in the root namespace: `listen` to `target`.
struct Proxy {
    harm: Arc<Harm>,
    listen: SocketAddr,
}

impl Proxy {
    fn start(listen: SocketAddr, target: SocketAddr) -> Proxy {
        let harm = Arc::new(Harm::default());
        let listener = TcpListener::bind(listen).unwrap();
        let h = harm.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if h.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = upstream.set_nodelay(true);
                for (from, to) in [(&client, &upstream), (&upstream, &client)] {
                    let (from, to, h) = (from.try_clone().unwrap(), to.try_clone().unwrap(), h.clone());
                    std::thread::spawn(move || pump(from, to, &h));
                }
            }
        });
        Proxy { harm, listen }
    }

    fn harm(&self, delay_ms: u64, reset_per_mille: u32) {
        self.harm.delay_ms.store(delay_ms, Ordering::SeqCst);
        self.harm.reset_per_mille.store(reset_per_mille, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.harm.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.listen, Duration::from_millis(200));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, harm: &Harm) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = to.shutdown(std::net::Shutdown::Write);
                return;
            }
            Ok(n) => n,
        };
        let delay = harm.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let p = harm.reset_per_mille.load(Ordering::Relaxed);
        if p > 0 && rand::random::<u32>() % 1000 < p {
            harm.resets.fetch_add(1, Ordering::Relaxed);
            let _ = from.shutdown(std::net::Shutdown::Both);
            let _ = to.shutdown(std::net::Shutdown::Both);
            return;
        }
        if to.write_all(&buf[..n]).is_err() {
            let _ = from.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

/// A process in a namespace, killed when dropped.
struct InNs(Option<Child>);

impl InNs {
    fn start(ns: &str, program: &str, args: &[&str], env: &[(&str, String)], log: &Path) -> InNs {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &format!("{P}-{ns}"), program])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        InNs(Some(child))
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let mut c = self.0.take().unwrap();
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        c.wait().unwrap()
    }
}

impl Drop for InNs {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One row of the table: a fault, how long it lasted, what it did, and
/// what the store held after it.
struct Row {
    fault: String,
    seconds: f64,
    seen: String,
    produced: usize,
    stored: usize,
    lost: usize,
    duplicated: usize,
    problems: usize,
}

/// The whole scenario.
struct Hosts {
    dir: PathBuf,
    loc: vigie_ingest::store::objects::S3Location,
    brokers: String,
    topic: String,
    group: String,
    produced: Vec<Vec<u8>>,
    rows: Vec<Row>,
}

impl Hosts {
    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Waits for `cond`; on time out, fails with the tails of the logs.
    fn wait(&self, what: &str, secs: u64, cond: impl Fn(&Hosts) -> bool) {
        let end = Instant::now() + Duration::from_secs(secs);
        while !cond(self) {
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}\na:\n{}\nb:\n{}\nbroker:\n{}\nstore:\n{}",
                tail(&self.log("a")),
                tail(&self.log("b")),
                tail(&self.log("broker")),
                tail(&self.log("s3"))
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn count(&self, name: &str, what: &str) -> usize {
        self.log(name).matches(what).count()
    }

    /// The instance that holds the analysis lease, by its last word on it.
    fn writer(&self) -> Option<&'static str> {
        let last = |n: &str| {
            let log = self.log(n);
            let at = |w: &str| log.rfind(w).map(|i| i as i64).unwrap_or(-1);
            at(WRITER) > at("Another instance is the analysis writer").max(at("Lease taken by another"))
        };
        match (last("a"), last("b")) {
            (true, false) => Some("a"),
            (false, true) => Some("b"),
            _ => None,
        }
    }

    fn produce(&mut self, p: &rdkafka::producer::BaseProducer, records: &[Vec<u8>]) {
        for (i, r) in records.iter().enumerate() {
            send(p, &self.topic, ((self.produced.len() + i) % 4) as i32, r);
        }
        p.flush(Duration::from_secs(300)).unwrap();
        self.produced.extend_from_slice(records);
    }

    /// Waits for every produced offset to be committed, then compares the
    /// bucket with what was produced, and records the row.
    fn check(&mut self, fault: &str, seconds: f64, seen: String) {
        let total = self.produced.len() as i64;
        let end = Instant::now() + Duration::from_secs(180);
        // One client asks, once a second: it never joins the group.
        let probe: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let committed = || {
            let mut tpl = rdkafka::TopicPartitionList::new();
            for p in 0..4 {
                tpl.add_partition(&self.topic, p);
            }
            rdkafka::consumer::Consumer::committed_offsets(&probe, tpl, Duration::from_secs(5))
                .map(|t| t.elements().iter().map(|e| e.offset().to_raw().unwrap_or(0).max(0)).sum::<i64>())
                .unwrap_or(-1)
        };
        while committed() != total {
            assert!(
                Instant::now() < end,
                "{fault}: offsets committed {} of {total}\na:\n{}\nb:\n{}",
                committed(),
                tail(&self.log("a")),
                tail(&self.log("b"))
            );
            std::thread::sleep(Duration::from_secs(1));
        }
        let copy = self.dir.join("copy");
        let contents = Backend::S3(self.loc.clone()).contents(&self.dir.join("unused"), &copy);
        let (ids, rows) = raw_event_ids(&contents);
        let want = expected(&self.produced);
        let mut unique_ids = ids.clone();
        unique_ids.dedup();
        let set: std::collections::HashSet<&String> = unique_ids.iter().collect();
        let lost = want.iter().filter(|w| !set.contains(w)).count();
        let problems = range_problems(&contents, &self.topic);
        let b = vigie_ingest::store::bucket::Bucket::open(&self.loc, "checker").unwrap();
        // One object under that key, or none (a key holds one object).
        let findings = usize::from(b.get("findings.json").unwrap().is_some());
        self.rows.push(Row {
            fault: fault.to_string(),
            seconds,
            seen: format!("{seen}; findings.json: {findings}"),
            produced: want.len(),
            stored: rows,
            lost,
            duplicated: rows - unique_ids.len(),
            problems: problems.len(),
        });
        assert_eq!(findings, 1, "{fault}: one findings.json");
        assert!(problems.is_empty(), "{fault}: {problems:?}");
        assert_eq!((lost, rows - unique_ids.len()), (0, 0), "{fault}: lost, duplicated");
    }

    fn table(&self) -> String {
        let mut t = String::from(
            "| fault | seconds | what happened | events produced so far | rows in the bucket | lost | duplicated | offset problems |\n\
             |---|---:|---|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            t.push_str(&format!(
                "| {} | {:.0} | {} | {} | {} | {} | {} | {} |\n",
                r.fault, r.seconds, r.seen, r.produced, r.stored, r.lost, r.duplicated, r.problems
            ));
        }
        t
    }
}

const WRITER: &str = "This instance is the analysis writer";

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn faults_between_hosts_lose_nothing_and_store_nothing_twice() {
    let Some(_) = needs(Tool::Root) else { return };
    let Some(tansu) = needs(Tool::Tansu) else { return };
    let Some(s3s) = needs(Tool::S3sFs) else { return };
    let Some(_) = needs(Tool::Kill) else { return };
    let rounds: usize = std::env::var("VIGIE_FAULTS_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
    let workers: u32 = std::env::var("VIGIE_FAULTS_WORKERS").ok().and_then(|r| r.parse().ok()).unwrap_or(8);

    let mut dir = tempfile::Builder::new().prefix("vigie-faults-").tempdir().unwrap();
    if std::env::var("VIGIE_FAULTS_KEEP").is_ok_and(|v| !v.is_empty()) {
        // The logs and the bucket's copy stay for a look afterwards.
        dir.disable_cleanup(true);
        eprintln!("logs kept in {}", dir.path().display());
    }
    let _net = Net::up();
    // The broker advertises the proxy's address: every client, the
    // harness's producer too, goes through the proxy.
    let k_proxy =
        Proxy::start(format!("{K_ROOT}:9092").parse().unwrap(), format!("{K_BROKER}:9092").parse().unwrap());
    let s_proxy =
        Proxy::start(format!("{S_ROOT}:9000").parse().unwrap(), format!("{S_STORE}:9000").parse().unwrap());
    let _broker = InNs::start(
        "k",
        &tansu,
        &[
            "broker",
            "--listener-url",
            &format!("tcp://{K_BROKER}:9092"),
            "--advertised-listener-url",
            &format!("tcp://{K_ROOT}:9092"),
            "--storage-engine",
            "memory://tansu/",
            "--silent",
        ],
        &[],
        &dir.path().join("broker.log"),
    );
    let s3_root = dir.path().join("s3");
    std::fs::create_dir_all(s3_root.join("vigie-test")).unwrap();
    let secret = format!("vigie-{:08x}", rand::random::<u32>());
    let _store = InNs::start(
        "s",
        &s3s,
        &[
            "--host",
            S_STORE,
            "--port",
            "9000",
            "--access-key",
            "vigie",
            "--secret-key",
            &secret,
            s3_root.to_str().unwrap(),
        ],
        &[],
        &dir.path().join("s3.log"),
    );
    let brokers = format!("{K_ROOT}:9092");
    wait_for("the broker and the store", Duration::from_secs(30), || {
        TcpStream::connect(format!("{K_ROOT}:9092")).is_ok()
            && TcpStream::connect(format!("{S_ROOT}:9000")).is_ok()
    });
    let loc = vigie_ingest::store::objects::S3Location {
        bucket: "vigie-test".into(),
        prefix: unique("faults"),
        endpoint: Some(format!("http://{S_ROOT}:9000")),
        region: Some("us-east-1".into()),
        allow_http: true,
        credentials: Some(("vigie".into(), secret.clone())),
    };
    let mut h = Hosts {
        dir: dir.path().to_path_buf(),
        loc: loc.clone(),
        brokers: brokers.clone(),
        topic: unique("events"),
        group: unique("vigie"),
        produced: Vec::new(),
        rows: Vec::new(),
    };
    create_topic(&brokers, &h.topic, 4);
    let records = recent_records(workers, 4, 16);
    // One chunk for the start, three a round.
    let chunks: Vec<Vec<Vec<u8>>> =
        records.chunks(records.len().div_ceil(1 + 3 * rounds)).map(<[_]>::to_vec).collect();
    let mut chunks = chunks.into_iter();
    let p = producer(&brokers, true);

    // The instances: one configuration, one bucket, one key.
    let key = key_file(dir.path());
    let cfg = dir.path().join("vigie.toml");
    let here = dir.path().join("unused");
    let toml = common::service_toml_session(&brokers, &h.topic, &h.group, &here, "", SESSION_MS)
        .replace(
            &format!("path = \"{}\"", here.display()),
            &format!(
                "path = \"s3://{}/{}\"\ns3_endpoint = \"http://{S_ROOT}:9000\"\ns3_region = \"us-east-1\"\ns3_allow_http = true\nkey_file = \"{}\"",
                loc.bucket,
                loc.prefix,
                key.display()
            ),
        )
        .replace("interval_s = 2", &format!("interval_s = {INTERVAL_S}"));
    std::fs::write(&cfg, toml).unwrap();
    let env = [
        ("AWS_ACCESS_KEY_ID", "vigie".to_string()),
        ("AWS_SECRET_ACCESS_KEY", secret.clone()),
        ("VIGIE_LOG", "info".to_string()),
    ];
    let vigie = env!("CARGO_BIN_EXE_vigie");
    let start = |name: &str| {
        InNs::start(
            name,
            vigie,
            &["ingest", "--config", cfg.to_str().unwrap()],
            &env,
            &dir.path().join(format!("{name}.log")),
        )
    };
    let a = start("a");
    let b = start("b");
    h.wait("both instances assigned", 60, |h| assigned(&h.log("a")) && assigned(&h.log("b")));
    let started = Instant::now();
    h.produce(&p, &chunks.next().unwrap());
    h.wait("an analysis writer", 30, |h| h.writer().is_some());
    h.check("none", started.elapsed().as_secs_f64(), format!("writer: {}", h.writer().unwrap()));

    for round in 1..=rounds {
        // 1. An instance cut off the broker for three session timeouts.
        let cut = if round % 2 == 1 { "a" } else { "b" };
        let other = if cut == "a" { "b" } else { "a" };
        let (lost_before, assigned_before) =
            (h.count(cut, "Partitions lost"), h.count(other, "Partition assigned"));
        let t = Instant::now();
        Net::link(cut, "k", false);
        h.produce(&p, &chunks.next().unwrap());
        std::thread::sleep(Duration::from_millis(3 * SESSION_MS));
        Net::link(cut, "k", true);
        let secs = t.elapsed().as_secs_f64();
        let moved = h.count(other, "partition=") > assigned_before;
        h.check(
            &format!("round {round}: {cut} cut off the broker ({}x the session timeout)", 3),
            secs,
            format!(
                "{other} assigned more partitions: {}; {cut} told its assignment was lost: {}",
                if moved { "yes" } else { "no (before it came back)" },
                h.count(cut, "Partitions lost") > lost_before
            ),
        );

        // 2. The analysis writer cut off the store for three intervals.
        let writer = h.writer().expect("a writer");
        let next = if writer == "a" { "b" } else { "a" };
        let (took_before, done_before) = (h.count(next, WRITER), h.count(writer, "Analysis done"));
        let t = Instant::now();
        Net::link(writer, "s", false);
        h.produce(&p, &chunks.next().unwrap());
        let end = Instant::now() + Duration::from_secs(6 * INTERVAL_S + 20);
        while h.count(next, WRITER) == took_before && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
        }
        let taken = t.elapsed().as_secs_f64();
        assert!(
            h.count(next, WRITER) > took_before,
            "{next} never took the analysis lease:\n{}",
            tail(&h.log(next))
        );
        std::thread::sleep(Duration::from_secs(3 * INTERVAL_S).saturating_sub(t.elapsed()));
        // The cut writer analysed nothing while cut off.
        assert_eq!(h.count(writer, "Analysis done"), done_before, "{writer} analysed without the store");
        Net::link(writer, "s", true);
        let secs = t.elapsed().as_secs_f64();
        // Back, the old writer learns it lost the lease at its next renewal
        // and writes no findings: the new one does.
        h.wait("the old writer to stand down", 30, |h| h.writer() == Some(next));
        let done_old = h.count(writer, "Analysis done");
        let done_new = h.count(next, "Analysis done");
        h.check(
            &format!("round {round}: the analysis writer ({writer}) cut off the store (3 intervals)"),
            secs,
            format!("{next} took the lease after {taken:.1} s"),
        );
        assert_eq!(h.count(writer, "Analysis done"), done_old, "{writer} analysed after losing the lease");
        assert!(h.count(next, "Analysis done") > done_new || h.count(next, "Analysis done") > 0);

        // 3. Delay on both paths, and connections reset on the store's.
        let t = Instant::now();
        k_proxy.harm(50, 0);
        s_proxy.harm(100, 20);
        h.produce(&p, &chunks.next().unwrap());
        std::thread::sleep(Duration::from_secs(10));
        k_proxy.harm(0, 0);
        s_proxy.harm(0, 0);
        let secs = t.elapsed().as_secs_f64();
        let resets = s_proxy.harm.resets.load(Ordering::Relaxed);
        h.check(
            &format!("round {round}: 50 ms delay to the broker, 100 ms and 2% of chunks reset to the store"),
            secs,
            format!("store connections reset: {resets}"),
        );
    }
    let rest: Vec<Vec<u8>> = chunks.flatten().collect();
    if !rest.is_empty() {
        let t = Instant::now();
        h.produce(&p, &rest);
        h.check("none (the rest of the stream)", t.elapsed().as_secs_f64(), String::new());
    }
    let sa = a.terminate();
    let sb = b.terminate();
    assert!(
        sa.success() && sb.success(),
        "{sa:?} {sb:?}\na:\n{}\nb:\n{}",
        tail(&h.log("a")),
        tail(&h.log("b"))
    );
    let table = h.table();
    println!("{table}");
    if let Ok(out) = std::env::var("VIGIE_FAULTS_TABLE") {
        std::fs::write(out, &table).unwrap();
    }
}
