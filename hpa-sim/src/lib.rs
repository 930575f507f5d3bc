//! hpa-sim: a model of the Kubernetes HorizontalPodAutoscaler controller and of an LLM server,
//! to choose autoscaling metrics, targets and behavior before production.
//!
//! Flow: `spec` (the HPA as written) -> `controller` (one sync, with `calc` for each metric's
//! proposal) <- `pipeline` (what Prometheus and the adapter serve) <- `serving` (the pods and
//! the Service; each pod's batching, queue and KV cache in `replica`, in continuous time, its
//! settings in `server`, its step time and GPU curves from a `profile`) <- the `workload` (the
//! `arrivals` drawn from a `trace`, the same for every policy); `simulate` runs that loop (under
//! the HPA or a fixed `schedule`), `bounds` gives the yardsticks (`lower`, the lower bound, and
//! the best schedule found with the future known), `sweep` makes a sweep's settings and `tune`
//! runs them, `report` writes what a person reads (tables, JSON, CSV, SVG plots, progress),
//! `calibrate` fits a profile to a load test or a history.

pub mod arrivals;
pub mod bounds;
pub mod calc;
pub mod calibrate;
pub mod controller;
pub mod curves;
pub mod input;
pub mod lower;
pub mod pipeline;
pub mod profile;
pub mod quantity;
pub mod replay;
pub mod replica;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod schedule;
pub mod server;
pub mod serving;
pub mod simulate;
pub mod spec;
pub mod sweep;
pub mod trace;
pub mod tune;
pub mod workload;
