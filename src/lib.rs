//! gpu-pod-exporter: GPU telemetry for Kubernetes nodes, as a library under a thin binary.
//!
//! Data flows one way, one module per stage (docs/design.md, "One direction of flow"):
//!
//! ```text
//! collect (vendor backends, own threads) -> collect::Hub (each collector's latest report)
//!     -> snapshot (publisher thread; attribute::stage adds the pods) -> SnapshotStore
//!     -> encode (Prometheus text) -> web (HTTP)
//! ```
//!
//! Below every stage, the floor they share: `sample` (what a backend reports), `pod` (what
//! attribution makes of it), `pci`, `backoff`, `paths` (every host path) and `timing` (every
//! span derived from the interval). `config` turns the command line into resolved settings;
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
