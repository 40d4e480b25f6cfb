//! `vigie demo`: a synthetic site with the issues an auditor should find,
//! through the same audit path as `vigie audit`, with no external service.

use std::path::Path;
use std::sync::Arc;

use vigie_analyze::policy::Policy;
use vigie_ingest::event::Origin;
use vigie_ingest::pseudo::Pseudonymiser;

use crate::audit::{self, AuditOutcome, AuditSetup};
use crate::generate::{Generator, NdjsonWriter, Scenario, SiteSpec};

/// Workers and days of the demo site.
pub const DEMO_WORKERS: u32 = 100;
pub const DEMO_DAYS: u32 = 42;

/// Records a real export may carry by mistake: the demo shows how they are
/// rejected or dropped.
const FLAWED: [&str; 5] = [
    "{\"event_id\":\"demo-bad-1\",\"ts\":\"2026-03-03T09:00:00+01:00\",\"site\":\"lyon-1\"",
    "{\"event_id\":\"demo-bad-2\",\"ts\":\"03/03/2026 09:00\",\"site\":\"lyon-1\",\"worker\":\"E999001\",\"kind\":\"scan\"}",
    "{\"event_id\":\"demo-bad-3\",\"ts\":\"2026-03-03T09:00:00+01:00\",\"site\":\"lyon-1\",\"kind\":\"scan\"}",
    "{\"event_id\":\"demo-bad-4\",\"ts\":\"2026-03-03T09:00:00+01:00\",\"site\":\"lyon-1\",\"worker\":\"E999002\",\"kind\":\"coffee\"}",
    "{\"event_id\":\"demo-bad-5\",\"ts\":\"2026-03-03T09:00:00+01:00\",\"site\":\"lyon 1\",\"worker\":\"E999003\",\"kind\":\"scan\"}",
];

pub fn run(policy: Policy, lang: String, out: &Path) -> anyhow::Result<AuditOutcome> {
    let setup = AuditSetup {
        policy,
        employer: None,
        pseudo: Pseudonymiser::ephemeral(),
        out: out.to_path_buf(),
        lang,
        rejects_cap_bytes: vigie_ingest::rejects::DEFAULT_REJECTS_CAP_BYTES,
        mapping: None,
        sources: Default::default(),
    };
    // About 3 M events.
    audit::run(setup, 3_000_000, |ing, _| {
        let name: Arc<str> = Arc::from("demo:generated");
        let mut g = Generator::new(SiteSpec::new(DEMO_WORKERS, DEMO_DAYS, 2026, Scenario::Demo));
        let writer = NdjsonWriter::new(&g);
        let pb = audit::progress_bar(u64::from(DEMO_DAYS), "generating");
        let mut line_no = 0u64;
        let mut buf = Vec::with_capacity(16 << 20);
        let mut last = Vec::new();
        for d in 0..DEMO_DAYS {
            buf.clear();
            for e in g.day(d) {
                let id = g.next_event_id();
                writer.write(id, &e, &mut buf);
            }
            if d == 1 {
                for bad in FLAWED {
                    buf.extend_from_slice(bad.as_bytes());
                    buf.push(b'\n');
                }
                // A record sent twice, and one with a field outside the
                // contract (dropped at the door, counted).
                buf.extend_from_slice(&last);
                let extra = String::from_utf8_lossy(&last).replacen(
                    "{\"event_id\":\"",
                    "{\"badge\":\"B-4471\",\"event_id\":\"x-",
                    1,
                );
                buf.extend_from_slice(extra.as_bytes());
            }
            for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                line_no += 1;
                ing.offer_json(line, || Origin::File { file: name.clone(), line: line_no })?;
                last.clear();
                last.extend_from_slice(line);
                last.push(b'\n');
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        Ok(audit::Fed {
            inputs: Vec::new(),
            files: vec![format!("generated: {} workers, {} days, scenario demo", DEMO_WORKERS, DEMO_DAYS)],
            mapping: None,
            seq_ranges: Vec::new(),
        })
    })
}
