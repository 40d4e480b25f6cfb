//! A real Prometheus (Debian's `prometheus` package, on loopback) scrapes
//! `vigie demo --serve` and a `vigie ingest` service, then every query of
//! every dashboard panel goes to its HTTP API: each must succeed and return
//! at least one series. `promtool` checks the configuration, the rules (and
//! their unit tests) and a real scrape of both.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GET over HTTP/1.0; (status, body).
fn http_get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}\r\n").as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut c = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (scripts/test.sh installs Debian's prometheus package)");
    if let Some(s) = stdin {
        c.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(c.stdin.take());
    let out = c.wait_with_output().unwrap();
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn promtool_checks_the_configuration_and_the_rules_and_runs_their_unit_tests() {
    if !common::needs_all(&[common::Tool::Promtool]) {
        return;
    }
    let dir = repo().join("deploy/prometheus");
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["check", "rules", "rules.yml"],
        vec!["test", "rules", "rules_test.yml"],
    ] {
        let mut full = vec![];
        let joined: Vec<String> = args
            .iter()
            .map(|a| if a.ends_with(".yml") { dir.join(a).display().to_string() } else { a.to_string() })
            .collect();
        full.extend(joined.iter().map(String::as_str));
        let (ok, out) = promtool(&full, None);
        assert!(ok, "promtool {}: {out}", args.join(" "));
    }
}

fn panel_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(repo().join("dashboards")).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let d = read_json(&p);
        for panel in d["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().unwrap() {
                let at = format!("{} / {}", d["uid"].as_str().unwrap(), panel["title"].as_str().unwrap());
                out.push((at, t["expr"].as_str().unwrap().to_string()));
            }
        }
    }
    out
}

fn start_ingest(dir: &Path, brokers: &str, port: u16) -> Kill {
    let store = dir.join("store");
    let toml = service_toml(brokers, "events", "prom", &store, "")
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""));
    let cfg = dir.join("vigie.toml");
    std::fs::write(&cfg, toml).unwrap();
    let log = std::fs::File::create(dir.join("ingest.log")).unwrap();
    Kill(
        vigie()
            .args(["ingest", "--config", cfg.to_str().unwrap()])
            .env("VIGIE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

#[test]
fn every_dashboard_query_returns_series_from_a_real_prometheus() {
    if !common::needs_all(&[common::Tool::Promtool, common::Tool::Prometheus]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (demo_port, ingest_port, prom_port) = (free_port(), free_port(), free_port());

    // The demo, with a bearer token on its endpoint.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "t0k3n\n").unwrap();
    let _demo = Kill(
        vigie()
            .args(["demo", "--out", dir.path().join("demo").to_str().unwrap()])
            .args(["--serve", &format!("127.0.0.1:{demo_port}")])
            .args(["--bearer-token-file", token_file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // The service, on an in-process mock cluster (the broker is not what
    // this test is about; tests/it/service_broker.rs uses a real one).
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    cluster.create_topic("events", 2, 1).unwrap();
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &brokers).create().unwrap();
    let mut records = recent_records(8, 5, 5);
    records.extend(BAD_RECORDS.iter().map(|(b, _)| b.as_bytes().to_vec()));
    for r in &records {
        producer.send(BaseRecord::<(), [u8]>::to("events").payload(r.as_slice())).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let _ingest = start_ingest(dir.path(), &brokers, ingest_port);

    wait_for("the demo's /metrics", Duration::from_secs(180), || {
        http_get(demo_port, "/metrics", Some("t0k3n")).is_some_and(|(s, _)| s == 200)
    });
    assert_eq!(http_get(demo_port, "/metrics", None).unwrap().0, 401, "the token is required");
    wait_for("the service's first analysis", Duration::from_secs(120), || {
        http_get(ingest_port, "/metrics", None).is_some_and(|(_, b)| {
            b.lines().any(|l| {
                l.starts_with("vigie_analysis_last_success_timestamp_seconds ") && !l.ends_with(" 0")
            })
        })
    });

    // The container's health check: `vigie probe` on each endpoint. The
    // service is ready once it has joined its group (and its store takes
    // writes); an unknown path is not healthy.
    let probe = |port: u16, path: &str| {
        vigie()
            .args(["probe", "--addr", &format!("127.0.0.1:{port}"), "--path", path])
            .output()
            .unwrap()
            .status
            .code()
    };
    for port in [demo_port, ingest_port] {
        assert_eq!(probe(port, "/healthz"), Some(0), "{port} /healthz");
        // Readiness may drop for a moment while the group rebalances (a
        // loaded machine can make the mock cluster time a member out): the
        // probe must say ready within a rebalance.
        wait_for(&format!("{port} /readyz"), Duration::from_secs(60), || probe(port, "/readyz") == Some(0));
        assert_eq!(probe(port, "/nowhere"), Some(1), "{port} /nowhere");
    }
    assert_eq!(probe(free_port(), "/healthz"), Some(1), "nothing listening");

    // promtool check metrics on a real scrape of each.
    for (port, token) in [(demo_port, Some("t0k3n")), (ingest_port, None)] {
        let (_, body) = http_get(port, "/metrics", token).unwrap();
        let (ok, out) = promtool(&["check", "metrics"], Some(&body));
        assert!(ok, "promtool check metrics on port {port}: {out}");
    }

    // Prometheus, scraping both every second and evaluating the rules.
    let rules = repo().join("deploy/prometheus/rules.yml");
    let conf = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: vigie-demo\n    authorization:\n      credentials_file: {}\n    \
         static_configs:\n      - targets: ['127.0.0.1:{demo_port}']\n  - job_name: vigie\n    \
         static_configs:\n      - targets: ['127.0.0.1:{ingest_port}']\n",
        rules.display(),
        token_file.display()
    );
    let conf_path = dir.path().join("prometheus.yml");
    std::fs::write(&conf_path, conf).unwrap();
    let (ok, out) = promtool(&["check", "config", conf_path.to_str().unwrap()], None);
    assert!(ok, "{out}");
    let _prom = Kill(
        Command::new("prometheus")
            .arg(format!("--config.file={}", conf_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("prometheus is installed (scripts/test.sh installs Debian's prometheus package)"),
    );
    let query = |q: &str| -> serde_json::Value {
        let (status, body) = http_get(prom_port, &format!("/api/v1/query?query={}", encode(q)), None)
            .unwrap_or((0, String::new()));
        serde_json::from_str(&body)
            .unwrap_or_else(|_| serde_json::json!({"status": "error", "http": status, "body": body}))
    };
    wait_for("both targets up for 10 scrapes", Duration::from_secs(90), || {
        let r = query("count(count_over_time(up[1m]) >= 10 and up == 1)");
        r["data"]["result"][0]["value"][1].as_str() == Some("2")
    });

    let mut failures = Vec::new();
    let queries = panel_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    for (at, expr) in &queries {
        let q = expr
            .replace("$__rate_interval", "20s")
            .replace("${datasource}", "")
            .replace("$site", ".*")
            .replace("$group", ".*");
        let r = query(&q);
        if r["status"] != "success" {
            failures.push(format!("{at}: {q}: {r}"));
        } else if r["data"]["result"].as_array().is_none_or(std::vec::Vec::is_empty) {
            failures.push(format!("{at}: {q}: no series"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} panel queries failed:\n{}",
        failures.len(),
        queries.len(),
        failures.join("\n")
    );
}
