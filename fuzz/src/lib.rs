//! Shared pieces of vigie's fuzz targets: the fuzzer's bytes drive the
//! same hostile-record generator as the property tests
//! (`vigie_ingest::planted`).

pub use vigie_ingest::planted::{leaks, record, scrub, Choose, PLANTED, PLANTED_NUM};

/// Choices taken from the fuzzer's bytes (0 once they run out).
pub struct Bytes<'a>(pub arbitrary::Unstructured<'a>);

impl Choose for Bytes<'_> {
    fn pick(&mut self, n: u32) -> u32 {
        self.0.int_in_range(0..=n.max(1) - 1).unwrap_or(0)
    }
}

/// Panics if the planted identifier appears in `bytes`.
pub fn assert_absent(bytes: &[u8], record: &str) {
    assert!(!leaks(bytes), "the planted identifier came out of {record}: {}", String::from_utf8_lossy(bytes));
}

/// A pseudonymiser with a fixed key.
pub fn pseudonymiser() -> vigie_ingest::pseudo::Pseudonymiser {
    vigie_ingest::pseudo::Pseudonymiser::new(&[7u8; 32]).unwrap()
}

/// A panic hook that does not abort: vigie catches a panic of the Parquet
/// decoder and reports the file as unreadable, as in production; any other
/// panic still unwinds out of the target and libFuzzer reports it as a
/// crash. (libfuzzer-sys's own hook aborts on every panic, caught or not.)
pub fn caught_panics_are_errors() {
    std::panic::set_hook(Box::new(|_| {}));
}
