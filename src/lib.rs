//! gpu-pod-exporter: GPU telemetry for Kubernetes nodes, as a library under a thin binary.
//!
//! Data flows one way, one module per stage:
//!
//! ```text
//! collect (vendor backends, own threads) -> sample (vendor-neutral values)
//!     -> snapshot (immutable, swapped whole) -> encode (Prometheus text) -> web (HTTP)
//! ```
//!
//! `config` turns the command line into resolved settings and `paths` holds every host path;
//! `selfstats` reads the agent's own CPU time and memory from `/proc/self`.

pub mod attribute;
pub mod backoff;
pub mod collect;
pub mod config;
pub mod encode;
pub mod paths;
pub mod pci;
pub mod pod;
pub mod sample;
pub mod selfstats;
pub mod snapshot;
pub mod timing;
pub mod web;
