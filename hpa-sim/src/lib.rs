//! hpa-sim: a model of the Kubernetes HorizontalPodAutoscaler controller and of an LLM server,
//! to choose autoscaling metrics, targets and behavior before production.
//!
//! Flow: `spec` (the HPA as written) -> `controller` (one sync, with `calc` for each metric's
//! proposal) <- `pipeline` (what Prometheus and the adapter serve) <- `serving` (the pods and
//! the Service; each pod's batching, queue and KV cache in `replica`, in continuous time, its
//! step time and GPU curves from a `profile`) <- `arrivals` (drawn from a `trace`); `simulate`
//! runs that loop, `oracle` gives the clairvoyant yardstick, `tune` sweeps settings, `report`
//! writes tables and plots, `calibrate` fits a profile to a load test or a history.

pub mod arrivals;
pub mod calc;
pub mod calibrate;
pub mod controller;
pub mod curves;
pub mod input;
pub mod oracle;
pub mod pipeline;
pub mod profile;
pub mod quantity;
pub mod replay;
pub mod replica;
pub mod report;
pub mod rng;
pub mod scenario;
pub mod serving;
pub mod simulate;
pub mod spec;
pub mod trace;
pub mod tune;
