//! vigie's integration tests, in one binary so that Polars and librdkafka
//! are linked once. Each module was a test binary of its own; `common` holds
//! their shared helpers and the probe for the tools some tests need.

mod audit_files;
mod common;
mod faults_netns;
mod metrics;
mod prometheus;
mod report;
mod rules;
mod scenarios;
mod service_broker;
mod service_faults;
mod service_mock;
mod service_store;
mod store_objects;
