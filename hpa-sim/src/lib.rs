//! hpa-sim: a model of the Kubernetes HorizontalPodAutoscaler controller and of an LLM server,
//! to choose autoscaling metrics, targets and behavior before production.
//!
//! Flow: `spec` (the HPA as written) -> `controller` (one sync, with `calc` for each metric's
//! proposal) <- `pipeline` (what Prometheus and the adapter serve) <- `serving` (the replicas,
//! their batches and queues, driven by a `trace`) ; `simulate` runs that loop, `oracle` gives
//! the clairvoyant yardstick, `tune` sweeps settings, `report` writes tables and plots.

pub mod calc;
pub mod controller;
pub mod curves;
pub mod input;
pub mod oracle;
pub mod pipeline;
pub mod quantity;
pub mod replay;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod serving;
pub mod simulate;
pub mod spec;
pub mod trace;
pub mod tune;
