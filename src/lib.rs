//! vigie: the command line, the audit path, the synthetic site and the
//! report. The door is in `vigie-ingest`, the rules in `vigie-analyze`.

pub mod audit;
pub mod cli;
pub mod custody;
pub mod demo;
pub mod generate;
pub mod http;
pub mod inspect;
pub mod metrics;
pub mod report;
pub mod service;
pub mod shutdown;
