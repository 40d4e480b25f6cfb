//! Helpers shared by the tests of several modules.

use crate::validate::Clock;

/// Reads `path` twice, with and without the columnar check: the same
/// events, rejects (reason, message, redacted record) and counts.
pub(crate) fn both_paths_agree(path: &std::path::Path, clock: Option<Clock>) -> (usize, usize) {
    use crate::rejects::MemoryRejects;
    let run = |columnar: bool| {
        let pseudo = crate::pseudo::Pseudonymiser::new(&[7u8; 32]).unwrap();
        let mut ing = crate::Ingestor::new(pseudo, clock, Vec::new(), MemoryRejects::default());
        ing.set_columnar_check(columnar);
        let read = crate::reader::read_file(path, &mut ing, &mut |_| {}).map(|d| (d.bytes, d.hex()));
        let (events, rejects, stats) = ing.finish().unwrap();
        (read.map_err(|e| e.to_string()), events, rejects.lines, stats)
    };
    let (fast, slow) = (run(true), run(false));
    assert_eq!(fast.0, slow.0, "{}", path.display());
    assert_eq!(fast.1, slow.1, "events of {}", path.display());
    // Everything of a reject but the time it was written.
    let rejects = |lines: &[String]| -> Vec<serde_json::Value> {
        lines
            .iter()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("rejected_at").expect("a time");
                v
            })
            .collect()
    };
    assert_eq!(rejects(&fast.2), rejects(&slow.2), "rejects of {}", path.display());
    assert_eq!(fast.3, slow.3, "counts of {}", path.display());
    (fast.1.len(), fast.2.len())
}
