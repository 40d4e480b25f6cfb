//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vigie_analyze::policy::Policy;
use vigie_analyze::rules::{self, Evaluation};
use vigie_analyze::shifts::{self, Shift};
use vigie_ingest::event::{Event, Origin};
use vigie_ingest::pseudo::Pseudonymiser;
use vigie_ingest::rejects::MemoryRejects;
use vigie_ingest::store::EventBatch;
use vigie_ingest::Ingestor;

pub fn vigie() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
}

/// Runs vigie and returns its output, with stderr kept for log checks.
pub fn run(args: &[&str]) -> Output {
    vigie().args(args).env("VIGIE_LOG", "info").output().expect("vigie runs")
}

/// A key file only its owner can read (vigie refuses a shared one).
pub fn key_file(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("key");
    std::fs::write(&p, [b'k'; 32]).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// One event of a tiny test input: worker, local time `HH:MM:SS` on a day
/// of March 2026 (`day` 2 is Monday 2 March), offset, kind and extra
/// fields as a JSON fragment.
#[derive(Clone)]
pub struct E<'a> {
    pub worker: &'a str,
    pub day: u32,
    pub time: &'a str,
    pub kind: &'a str,
    pub extra: &'a str,
    pub team: Option<&'a str>,
}

/// Shorthand for an event on 2 March 2026 at +01:00.
pub fn ev<'a>(worker: &'a str, time: &'a str, kind: &'a str) -> E<'a> {
    E { worker, day: 2, time, kind, extra: "", team: None }
}

impl<'a> E<'a> {
    pub fn day(mut self, d: u32) -> Self {
        self.day = d;
        self
    }
    pub fn extra(mut self, x: &'a str) -> Self {
        self.extra = x;
        self
    }
    pub fn team(mut self, t: &'a str) -> Self {
        self.team = Some(t);
        self
    }
}

/// Renders events as NDJSON lines (times at +01:00 unless the time
/// carries its own offset, e.g. `23:30:00Z`).
pub fn ndjson(events: &[E]) -> String {
    let mut out = String::new();
    for (i, e) in events.iter().enumerate() {
        let ts = if e.time.contains('T') {
            e.time.to_string()
        } else if e.time.ends_with('Z') || e.time.contains('+') || e.time[1..].contains('-') {
            format!("2026-03-{:02}T{}", e.day, e.time)
        } else {
            format!("2026-03-{:02}T{}+01:00", e.day, e.time)
        };
        let team = e.team.map(|t| format!(",\"team\":\"{t}\"")).unwrap_or_default();
        let extra = if e.extra.is_empty() { String::new() } else { format!(",{}", e.extra) };
        out.push_str(&format!(
            "{{\"event_id\":\"t{i}\",\"ts\":\"{ts}\",\"site\":\"s1\",\"worker\":\"{}\",\"kind\":\"{}\"{team}{extra}}}\n",
            e.worker, e.kind
        ));
    }
    out
}

/// Events through the door, in memory.
pub fn ingest(lines: &str) -> Vec<Event> {
    let pseudo = Pseudonymiser::new(&[b'k'; 32]).unwrap();
    let mut ing = Ingestor::new(pseudo, None, Vec::new(), MemoryRejects::default());
    for (i, l) in lines.lines().enumerate() {
        ing.offer_json(l.as_bytes(), || Origin::File { file: "t".into(), line: i as u64 + 1 }).unwrap();
    }
    let (events, rejects, _) = ing.finish().unwrap();
    assert!(rejects.lines.is_empty(), "test input rejected: {:?}", rejects.lines);
    events
}

/// Shifts of a tiny input, with the policy's shift model.
pub fn shifts_of(events: &[E], policy: &Policy) -> Vec<Shift> {
    let mut batch = EventBatch::default();
    for e in ingest(&ndjson(events)) {
        batch.push(e);
    }
    let df = batch.take_frame().unwrap();
    shifts::frame_shifts(df, &policy.shift_model()).unwrap()
}

/// A policy with k = 5 (the smallest allowed), for tiny inputs.
pub fn policy_k5() -> Policy {
    let mut p = Policy::profile("fr").unwrap();
    p.k = 5;
    p
}

/// Findings of a tiny input.
pub fn evaluate(events: &[E], policy: &Policy) -> Evaluation {
    let shifts = shifts_of(events, policy);
    rules::evaluate(&shifts, policy, None)
}

/// The same day repeated for `n` workers named w0..w{n-1}: `pattern` is
/// (time, kind, extra) triples.
pub fn crew<'a>(n: usize, names: &'a [String], pattern: &'a [(&'a str, &'a str, &'a str)]) -> Vec<E<'a>> {
    let mut out = Vec::new();
    for name in names.iter().take(n) {
        for (t, k, x) in pattern {
            out.push(ev(name, t, k).extra(x));
        }
    }
    out
}

pub fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("w{i}")).collect()
}

/// Every file under a directory, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Generated NDJSON records of a site whose first day is the Monday of two
/// weeks ago, so that every event is recent and none is in the future.
pub fn recent_records(workers: u32, days: u32, seed: u64) -> Vec<Vec<u8>> {
    use chrono::Datelike;
    use vigie::generate::{Generator, NdjsonWriter, Scenario, SiteSpec};
    let today = chrono::Utc::now().date_naive();
    let two_weeks = today - chrono::Days::new(14);
    let monday = two_weeks - chrono::Days::new(u64::from(two_weeks.weekday().num_days_from_monday()));
    let mut spec = SiteSpec::new(workers, days.min(12), seed, Scenario::Baseline);
    spec.start = monday;
    let mut g = Generator::new(spec);
    let w = NdjsonWriter::new(&g);
    let mut out = Vec::new();
    for d in 0..days.min(12) {
        for e in g.day(d) {
            let id = g.next_event_id();
            let mut line = Vec::new();
            w.write(id, &e, &mut line);
            while line.last() == Some(&b'\n') {
                line.pop();
            }
            out.push(line);
        }
    }
    out
}

/// Malformed records, one per reason a live stream can produce; each
/// carries a worker value that must never be stored.
pub const BAD_RECORDS: [(&str, &str); 4] = [
    ("{\"event_id\":\"bad-1\",\"ts\":\"2026-03-03T09:00:00+01:00\",\"site\":\"lyon-1\",\"worker\":\"SECRET-1\"", "invalid_json"),
    ("{\"event_id\":\"bad-2\",\"ts\":\"2026-03-03T09:00:00+01:00\",\"site\":\"lyon-1\",\"worker\":\"SECRET-2\",\"kind\":\"coffee\"}", "invalid_value"),
    ("{\"event_id\":\"bad-3\",\"ts\":\"2026-03-03T09:00:00+01:00\",\"site\":\"lyon-1\",\"kind\":\"scan\"}", "missing_field"),
    ("{\"event_id\":\"bad-4\",\"ts\":\"2099-03-03T09:00:00+01:00\",\"site\":\"lyon-1\",\"worker\":\"SECRET-4\",\"kind\":\"scan\"}", "future_timestamp"),
];

/// The event ids of the records that pass the door.
pub fn event_id(line: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(line).unwrap();
    v["event_id"].as_str().unwrap().to_string()
}

/// Every row of the raw tier of a service store: (event ids, rows).
pub fn raw_event_ids(store: &Path) -> (Vec<String>, usize) {
    use polars::prelude::*;
    let files = vigie_ingest::store::files_under(&store.join("raw"), "parquet");
    let mut ids = Vec::new();
    for f in files {
        let file = std::fs::File::open(&f).unwrap();
        let df = ParquetReader::new(file).finish().unwrap();
        let c = df.column("event_id").unwrap().str().unwrap().clone();
        ids.extend((0..c.len()).map(|i| c.get(i).unwrap().to_string()));
    }
    let n = ids.len();
    ids.sort();
    (ids, n)
}

/// Waits for `cond` with a deadline; panics with `what` when it passes.
pub fn wait_for(what: &str, deadline: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// A service configuration for tests: small batches, quick flushes, and
/// short group timeouts. A member killed while its group rebalances is
/// waited for up to its rebalance timeout (librdkafka's
/// `max.poll.interval.ms`, 5 minutes by default) before the group goes on
/// without it; the tests' members ask for 20 s, so that the instance
/// started after a `kill -9` gets its partitions within a test's wait.
/// The session timeout the service's test members ask for (librdkafka's
/// `session.timeout.ms`).
pub const SESSION_TIMEOUT_MS: u64 = 6000;

pub fn service_toml(brokers: &str, topic: &str, group: &str, store: &Path, extra: &str) -> String {
    service_toml_session(brokers, topic, group, store, extra, SESSION_TIMEOUT_MS)
}

/// [`service_toml`] with another session timeout (milliseconds; the
/// heartbeat interval is a third of it).
pub fn service_toml_session(
    brokers: &str,
    topic: &str,
    group: &str,
    store: &Path,
    extra: &str,
    session_ms: u64,
) -> String {
    let heartbeat_ms = session_ms / 3;
    format!(
        "[kafka]\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{group}\"\n\
         max_batch_events = 2000\nflush_interval_ms = 300\nshutdown_deadline_ms = 20000\n{extra}\n\
         [kafka.librdkafka]\n\"session.timeout.ms\" = \"{session_ms}\"\n\"heartbeat.interval.ms\" = \"{heartbeat_ms}\"\n\"max.poll.interval.ms\" = \"20000\"\n\"statistics.interval.ms\" = \"1000\"\n\
         [store]\npath = \"{}\"\nraw_retention_days = 30\n\
         [analysis]\ninterval_s = 2\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
        store.display()
    )
}

/// The offset ranges of the raw files of one topic, by partition, merged
/// over sites and dates: they must tile 0..end without gap or overlap
/// (a range with no valid event leaves only a checkpoint). Returns the
/// problems found.
pub fn range_problems(store: &Path, topic: &str) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut by_part: BTreeMap<i32, BTreeSet<(i64, i64)>> = BTreeMap::new();
    for f in vigie_ingest::store::files_under(&store.join("raw"), "parquet") {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        let (t, p, first, last) = vigie_ingest::store::parse_raw_name(&name).unwrap();
        if t == topic {
            by_part.entry(p).or_default().insert((first, last));
        }
    }
    let mut problems = Vec::new();
    for (p, ranges) in by_part {
        let mut next = 0;
        for (first, last) in ranges {
            if first < next {
                problems.push(format!("partition {p}: {first}-{last} overlaps up to {}", next - 1));
            } else if first > next {
                problems.push(format!("partition {p}: offsets {next}-{} are in no file", first - 1));
            }
            next = next.max(last + 1);
        }
    }
    problems
}

/// Sends one record to a partition, waiting while the producer's queue is
/// full.
pub fn send(p: &rdkafka::producer::BaseProducer, topic: &str, partition: i32, r: &[u8]) {
    use rdkafka::producer::BaseRecord;
    let mut rec = BaseRecord::<(), [u8]>::to(topic).payload(r).partition(partition);
    loop {
        match p.send(rec) {
            Ok(()) => return,
            Err((_, back)) => {
                rec = back;
                p.poll(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// The group's committed offsets, summed over partitions (none counts as
/// 0; -1 when the broker cannot say).
pub fn committed_total(brokers: &str, group: &str, topic: &str, partitions: i32) -> i64 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, std::time::Duration::from_secs(5))
        .map(|t| t.elements().iter().map(|e| e.offset().to_raw().unwrap_or(0).max(0)).sum())
        .unwrap_or(-1)
}

/// A contract NDJSON record rewritten as a vendor's JSON export would hold
/// it: its own key names, the worker under a nested key whose name does
/// not say it is an identifier (`Qui.code`), epoch milliseconds, vendor
/// event codes, numbers as strings with a decimal comma.
pub fn vendor_json(line: &[u8]) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(line).unwrap();
    let ts = chrono::DateTime::parse_from_rfc3339(v["ts"].as_str().unwrap()).unwrap();
    let code = VENDOR_CODES.iter().find(|c| c.1 == v["kind"].as_str().unwrap()).unwrap().0;
    let mut o = serde_json::json!({
        "TxnId": v["event_id"],
        "Horodatage": ts.timestamp_millis(),
        "Depot": v["site"],
        "Qui": { "code": v["worker"] },
        "Code": code,
    });
    for (from, to) in [("team", "Equipe"), ("zone", "Zone"), ("process", "Processus"), ("device", "Terminal")]
    {
        if let Some(s) = v[from].as_str() {
            o[to] = serde_json::Value::String(s.to_string());
        }
    }
    for (from, to) in [
        ("quantity", "Qte"),
        ("weight_kg", "Poids"),
        ("threshold_s", "Seuil"),
        ("gap_s", "Ecart"),
        ("target_per_hour", "Objectif"),
    ] {
        if let Some(x) = v[from].as_f64() {
            o[to] = serde_json::Value::String(x.to_string().replace('.', ","));
        }
    }
    serde_json::to_vec(&o).unwrap()
}

/// The vendor codes of `vendor_json`, and their kinds.
pub const VENDOR_CODES: [(&str, &str); 10] = [
    ("PICK_CONFIRM", "scan"),
    ("VOCAL", "voice_prompt"),
    ("LOGIN", "shift_start"),
    ("LOGOUT", "shift_end"),
    ("PAUSE_DEB", "break_start"),
    ("PAUSE_FIN", "break_end"),
    ("INACTIF", "idle_flag"),
    ("VITESSE", "speed_flag"),
    ("JUSTIF", "justification_request"),
    ("OBJECTIF", "rate_target"),
];

/// The mapping that reads `vendor_json` records.
pub fn vendor_mapping() -> String {
    let mut m = String::from(
        "name = \"vendor-json\"\n[csv]\ndecimal = \",\"\n[time]\nformat = \"epoch_ms\"\nzone = \"Europe/Paris\"\n\
         [fields]\nevent_id = { column = \"TxnId\" }\nts = { column = \"Horodatage\" }\nsite = { column = \"Depot\" }\n\
         worker = { column = \"Qui.code\" }\nkind = { column = \"Code\" }\nteam = { column = \"Equipe\" }\n\
         zone = { column = \"Zone\" }\nprocess = { column = \"Processus\" }\ndevice = { column = \"Terminal\" }\n\
         quantity = { column = \"Qte\" }\nweight_kg = { column = \"Poids\" }\nthreshold_s = { column = \"Seuil\" }\n\
         gap_s = { column = \"Ecart\" }\ntarget_per_hour = { column = \"Objectif\" }\n[kinds]\n",
    );
    for (code, kind) in VENDOR_CODES {
        m.push_str(&format!("{code} = \"{kind}\"\n"));
    }
    m
}

/// A tool some tests need besides cargo: `scripts/test.sh` installs and
/// starts each of them.
#[derive(Clone, Copy, Debug)]
pub enum Tool {
    /// A Kafka-protocol broker on loopback, its address in `VIGIE_TEST_BROKER`.
    Broker,
    /// The `tansu` broker program, for tests that start and stop their own.
    Tansu,
    /// `promtool`, from Debian's `prometheus` package.
    Promtool,
    /// The Prometheus server, same package.
    Prometheus,
    /// Chromium (or `VIGIE_CHROMIUM`), from Debian's `chromium` package.
    Chromium,
    /// `pdfinfo`, from Debian's `poppler-utils`.
    Pdfinfo,
    /// `ssh-keygen`, from Debian's `openssh-client`.
    SshKeygen,
    /// Python 3.11 or later (`tomllib`), for the dashboards' generator.
    Python3,
    /// The `kill` program, from Debian's `procps`, to signal a child.
    Kill,
    /// Root, to mount a small tmpfs (a full disk on demand).
    Root,
    /// An S3 server on loopback (s3s-fs, started by scripts/test.sh), its
    /// URL in `VIGIE_TEST_S3`, with a bucket `vigie-test`.
    S3,
    /// The s3s-fs program, for a test that starts its own S3 server.
    S3sFs,
}

impl Tool {
    fn what(self) -> &'static str {
        match self {
            Tool::Broker => "a Kafka-protocol broker (VIGIE_TEST_BROKER is not set)",
            Tool::Tansu => "the tansu broker program (cargo install tansu)",
            Tool::Promtool => "promtool (Debian's prometheus package)",
            Tool::Prometheus => "the prometheus server (Debian's prometheus package)",
            Tool::Chromium => "Chromium (Debian's chromium package, or VIGIE_CHROMIUM)",
            Tool::Pdfinfo => "pdfinfo (Debian's poppler-utils package)",
            Tool::SshKeygen => "ssh-keygen (Debian's openssh-client package)",
            Tool::Python3 => "python3, 3.11 or later",
            Tool::Kill => "the kill program (Debian's procps package)",
            Tool::Root => "root, to mount a tmpfs",
            Tool::S3 => "an S3 server (VIGIE_TEST_S3 is not set; scripts/test.sh starts s3s-fs)",
            Tool::S3sFs => "the s3s-fs program (cargo install s3s-fs --version 0.14.1 --features binary)",
        }
    }

    /// Where the tool is: the broker's address or the program's path.
    fn find(self) -> Option<String> {
        let program = |name: &str| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
        };
        match self {
            Tool::Broker => std::env::var("VIGIE_TEST_BROKER").ok().filter(|b| !b.is_empty()),
            Tool::S3 => std::env::var("VIGIE_TEST_S3").ok().filter(|b| !b.is_empty()),
            Tool::Tansu => program("tansu").map(|p| p.display().to_string()),
            Tool::S3sFs => program("s3s-fs").map(|p| p.display().to_string()),
            Tool::Promtool => program("promtool").map(|p| p.display().to_string()),
            Tool::Prometheus => program("prometheus").map(|p| p.display().to_string()),
            Tool::Chromium => vigie::report::find_chromium().map(|p| p.display().to_string()),
            Tool::Pdfinfo => program("pdfinfo").map(|p| p.display().to_string()),
            Tool::SshKeygen => program("ssh-keygen").map(|p| p.display().to_string()),
            Tool::Python3 => {
                let ok = Command::new("python3")
                    .args(["-c", "import sys; sys.exit(sys.version_info < (3, 11))"])
                    .status()
                    .is_ok_and(|s| s.success());
                ok.then(|| "python3".to_string())
            }
            Tool::Kill => program("kill").map(|p| p.display().to_string()),
            Tool::Root => std::fs::read_to_string("/proc/self/status")
                .ok()
                .filter(|s| {
                    s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
                })
                .map(|_| "root".to_string()),
        }
    }
}

/// Whether the tools are required: `scripts/test.sh` says so, and there a
/// missing tool fails the test instead of skipping it.
pub fn tools_required() -> bool {
    std::env::var("VIGIE_TEST_TOOLS").is_ok_and(|v| v == "required")
}

/// The tool's address or path when it is here. Run by `scripts/test.sh` a
/// missing tool fails the test; run any other way (`cargo test`) the test
/// is skipped, with a line on the terminal (written to the process's
/// stderr, past the test harness's capture) naming the test and the tool.
pub fn needs(tool: Tool) -> Option<String> {
    if let Some(found) = tool.find() {
        return Some(found);
    }
    let test = std::thread::current().name().unwrap_or("a test").to_string();
    assert!(
        !tools_required(),
        "{test} needs {}, which scripts/test.sh should have installed or started",
        tool.what()
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: it needs {}; scripts/test.sh installs and starts what the tests need",
        tool.what()
    );
    None
}

/// [`needs`] for several tools: true when every one is here (each
/// missing one is named).
pub fn needs_all(tools: &[Tool]) -> bool {
    // Every tool is looked up, not only those up to the first missing.
    let missing = tools.iter().filter(|t| needs(**t).is_none()).count();
    missing == 0
}

/// A fresh prefix of the test bucket (`vigie-test`) on the S3 server
/// scripts/test.sh starts, when there is one (else the test is skipped, or
/// fails under `VIGIE_TEST_TOOLS=required`).
pub fn s3_location(test: &str) -> Option<vigie_ingest::store::objects::S3Location> {
    let endpoint = needs(Tool::S3)?;
    let key = std::env::var("VIGIE_TEST_S3_KEY").unwrap_or_else(|_| "vigie".into());
    let secret = std::env::var("VIGIE_TEST_S3_SECRET").unwrap_or_else(|_| "vigie-secret".into());
    Some(vigie_ingest::store::objects::S3Location {
        bucket: "vigie-test".into(),
        prefix: format!("{test}-{}-{}", std::process::id(), rand::random::<u32>()),
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        allow_http: true,
        credentials: Some((key, secret)),
    })
}

/// Where a test's service store is: a folder, or a prefix of the test
/// bucket. The same tests run on both.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The folder `store.path` of the test's configuration.
    Folder,
    /// A prefix of the test bucket.
    S3(vigie_ingest::store::objects::S3Location),
}

impl Backend {
    /// The store as a pipeline opens it, as the instance `holder`.
    pub fn open(&self, folder: &Path, holder: &str) -> vigie_ingest::store::Store {
        use vigie_ingest::store::{bucket::Bucket, Store};
        match self {
            Backend::Folder => Store::Folder(folder.to_path_buf()),
            Backend::S3(loc) => Store::Bucket(std::sync::Arc::new(Bucket::open(loc, holder).unwrap())),
        }
    }

    /// A folder with what the store holds now: the folder itself, or a copy
    /// of the bucket's tiers, checkpoints, dead letters and quarantine in
    /// `copy` (made afresh), so that the same checks read both.
    pub fn contents(&self, folder: &Path, copy: &Path) -> std::path::PathBuf {
        use vigie_ingest::store::{
            bucket::Bucket, AGGREGATES, DEAD_LETTER, OFFSETS, QUARANTINE, RAW, SUMMARIES,
        };
        match self {
            Backend::Folder => folder.to_path_buf(),
            Backend::S3(loc) => {
                let _ = std::fs::remove_dir_all(copy);
                std::fs::create_dir_all(copy).unwrap();
                let b = Bucket::open(loc, "checker").unwrap();
                b.mirror(copy, &[RAW, SUMMARIES, AGGREGATES, OFFSETS, DEAD_LETTER, QUARANTINE], &[], &[])
                    .unwrap();
                copy.to_path_buf()
            }
        }
    }
}
