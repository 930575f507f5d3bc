//! The kubelet's pod-resources v1 API: which devices the kubelet allocated to which container.
//!
//! One background task polls the socket (`/var/lib/kubelet/pod-resources/kubelet.sock` under
//! the rootfs) over one long-lived gRPC channel and publishes an immutable [`KubeletView`];
//! readers take the latest view without waiting on the kubelet. A missing or broken socket is
//! never an error to the caller: the view says `available: false` and the task retries with
//! backoff.
//!
//! pod-resources carries no pod UID and no container ID, so consumers join by
//! namespace/pod/container name (docs/measurements.md, "Names and device IDs").
//!
//! Devices come two ways: `ContainerResources.devices` (device plugins) and
//! `ContainerResources.dynamic_resources` (DRA ResourceClaims; see [`ContainerClaim`] for which
//! kubelets fill it). `GetAllocatableResources` carries device-plugin devices only: KEP-3695
//! (kubernetes/enhancements, keps/sig-node/3695-pod-resources-for-dra) lists DRA in it as a
//! non-goal ("with DRA there is no standard way to get the capacity"), and upstream's
//! `AllocatableResourcesResponse` has no DRA field.

use std::error::Error as StdError;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::{Duration, SystemTime};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

use self::api::pod_resources_lister_client::PodResourcesListerClient;
use crate::backoff::Backoff;

/// The generated pod-resources v1 messages, client and server, from
/// `proto/podresources/v1/api.proto`. The server half is what the fake kubelet in `tests/`
/// serves; the agent itself only uses the client.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod api {
    tonic::include_proto!("v1");
}

/// How long one RPC (or the connection handshake) may take before the channel is dropped.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest List answer accepted. gRPC's default of 4 MiB is too small for nodes with many
/// pods that each hold several devices and CPUs.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// First wait after a failure ([`Backoff::FIRST`]): doubles up to [`Backoff::MAX`], and resets
/// on success.
pub const BACKOFF_MIN: Duration = Backoff::FIRST;

/// Polling faster than this would only load the kubelet (which rate-limits this API).
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// The URI is required by the HTTP/2 layer but never resolved: the connector opens the socket.
const DUMMY_URI: &str = "http://[::]:50051";

/// One container's devices of one resource, as the kubelet allocated them. pod-resources
/// carries no pod UID and no container ID: consumers join by namespace/pod/container name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDevices {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// e.g. `nvidia.com/gpu`, `nvidia.com/mig-1g.10gb`, `amd.com/gpu`.
    pub resource_name: String,
    /// As the device plugin named them: `GPU-<uuid>`, `GPU-<uuid>::2`, `MIG-<uuid>`,
    /// `nvidia0/gi1`, `0000:19:00.0`, ... (see `deviceid`).
    pub device_ids: Vec<String>,
}

/// One container's devices from one DRA ResourceClaim, as the kubelet's `List` reports them in
/// `ContainerResources.dynamic_resources`.
///
/// Which kubelets fill it (kubernetes/kubernetes, `staging/src/k8s.io/kubelet/pkg/apis/
/// podresources/v1/api.proto`; the gate in `pkg/features/kube_features.go`):
/// - 1.27 to 1.33: only with the `KubeletPodResourcesDynamicResources` gate on (alpha, off by
///   default) and `DynamicResourceAllocation` on. 1.27 to 1.30 send the claim's name and
///   namespace and its CDI device names only (`DynamicResource.class_name = 1` was dropped in
///   1.31, kubernetes/kubernetes#125488, and is a tombstone in the proto).
/// - 1.31 and later add `driver_name`, `pool_name` and `device_name` per device: the triplet
///   that names one device of a ResourceSlice.
/// - 1.34 and later: the gate is beta and on by default.
///
/// Newer kubelets also send `ClaimResource.share_id` (DRA consumable capacity, KEP-5075); the
/// proto in `proto/` is upstream's at the commit named in its header, which predates it, and
/// prost skips it as an unknown field. Sharing needs no share id here: two containers that the
/// kubelet reports with the same device share it, whichever claims they hold.
///
/// A claim that several containers (of one pod, or of several pods) reference is reported once
/// per container, so a shared claim gives one entry per container with the same devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerClaim {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// The ResourceClaim, `namespace/name` (for logs; the join does not need it).
    pub claim_namespace: String,
    pub claim_name: String,
    /// The claim's devices, in the kubelet's order.
    pub devices: Vec<ClaimDevice>,
}

/// One device of a claim, as the kubelet names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimDevice {
    /// The DRA driver, e.g. `gpu.nvidia.com`, `gpu.amd.com`. Empty before kubelet 1.31.
    pub driver: String,
    /// The ResourceSlice pool (the node's name for node-local drivers). Empty before 1.31.
    pub pool: String,
    /// The device's name in its pool, e.g. `gpu-0`, `gpu-0-128`. Empty before 1.31.
    pub device: String,
    /// Fully qualified CDI device names, `vendor/class=name`, e.g.
    /// `k8s.gpu.nvidia.com/claim=<claim uid>-gpu-0`. The kubelet appends the CDI names of a
    /// driver's devices cumulatively (`GetDynamicResources` in `pkg/kubelet/cm/
    /// container_manager_linux.go` builds the slice once per driver), so a later device of the
    /// same driver and claim may also carry the earlier devices' names: they belong to the same
    /// container either way.
    pub cdi_devices: Vec<String>,
}

/// What the kubelet said last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeletView {
    /// From `List`: one entry per container and resource, only for the resources asked for.
    pub allocations: Vec<ContainerDevices>,
    /// From `List`'s `dynamic_resources`: one entry per container and claim, every driver's
    /// (which of them are GPUs is the join's business, `attribute::dra`). Empty where the
    /// kubelet does not report DRA (see [`ContainerClaim`]).
    pub claims: Vec<ContainerClaim>,
    /// From `GetAllocatableResources`: resource name -> device IDs, only for the resources
    /// asked for. Empty where the kubelet does not serve that call (before 1.23, or with the
    /// `KubeletPodResourcesGetAllocatable` gate off).
    pub allocatable: Vec<(String, Vec<String>)>,
    /// When `allocations` were fetched; `None` until the first success.
    pub fetched_at: Option<SystemTime>,
    /// The last attempt succeeded. After a failure `allocations` and `fetched_at` still hold the
    /// last successful answer, so the consumer decides how long stale data is worth using.
    pub available: bool,
}

/// A handle on the polling task. Cheap to clone; the task ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct PodResources {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    view: RwLock<Arc<KubeletView>>,
}

impl PodResources {
    /// Starts polling `socket` every `interval` on the current tokio runtime, keeping the
    /// devices whose resource name starts with one of `resource_prefixes` (all of them if the
    /// list is empty).
    ///
    /// Never fails: a missing socket is logged at debug once per state change and retried with
    /// backoff ([`Backoff`]: 1 s doubling to 30 s, reset on success). Called outside a
    /// tokio runtime, it logs an error and returns a handle whose view stays unavailable.
    pub fn spawn(
        socket: PathBuf,
        interval: Duration,
        resource_prefixes: Vec<String>,
    ) -> PodResources {
        let shared = Arc::new(Shared::default());
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let poller = Poller {
                    socket,
                    interval: interval.max(MIN_INTERVAL),
                    prefixes: resource_prefixes,
                    shared: Arc::downgrade(&shared),
                };
                rt.spawn(poller.run());
            }
            Err(e) => {
                tracing::error!(error = %e, "pod-resources client started outside a tokio runtime; kubelet allocations stay unknown");
            }
        }
        PodResources { shared }
    }

    /// The latest view; never blocks on the kubelet.
    pub fn latest(&self) -> Arc<KubeletView> {
        Arc::clone(
            &self
                .shared
                .view
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

impl Shared {
    fn publish(&self, view: KubeletView) {
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }

    fn mark_unavailable(&self) {
        let mut slot = self.view.write().unwrap_or_else(PoisonError::into_inner);
        if slot.available {
            let mut view = KubeletView::clone(&slot);
            view.available = false;
            *slot = Arc::new(view);
        }
    }
}

/// Why one poll failed. Private: callers only see `available`.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("socket {0} is absent")]
    Absent(PathBuf),
    #[error("cannot connect to {path}: {source}")]
    Connect {
        path: PathBuf,
        source: Box<dyn StdError + Send + Sync>,
    },
    #[error("{0} timed out after {RPC_TIMEOUT:?}")]
    Timeout(&'static str),
    #[error("{rpc} failed: {:?}: {}", .status.code(), .status.message())]
    Rpc {
        rpc: &'static str,
        status: tonic::Status,
    },
}

/// The connection state, for logging changes only (never one line per poll).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Starting,
    Connected,
    Absent,
    Failing,
}

type Client = PodResourcesListerClient<Channel>;

struct Poller {
    socket: PathBuf,
    interval: Duration,
    prefixes: Vec<String>,
    shared: Weak<Shared>,
}

impl Poller {
    async fn run(self) {
        let mut client: Option<Client> = None;
        let mut link = Link::Starting;
        let mut backoff = Backoff::new();
        loop {
            let result = self.poll(&mut client).await;
            let Some(shared) = self.shared.upgrade() else {
                return; // Every handle is gone.
            };
            let wait = match result {
                Ok(view) => {
                    if link != Link::Connected {
                        tracing::info!(socket = %self.socket.display(), "connected to the kubelet pod-resources API");
                        link = Link::Connected;
                    }
                    shared.publish(view);
                    backoff.succeeded();
                    self.interval
                }
                Err(e) => {
                    client = None;
                    shared.mark_unavailable();
                    let now = match e {
                        PollError::Absent(_) => Link::Absent,
                        _ => Link::Failing,
                    };
                    if now != link {
                        let error = error_chain(&e);
                        match (now, link) {
                            (Link::Absent, _) => {
                                tracing::debug!(socket = %self.socket.display(), "kubelet pod-resources socket absent; retrying with backoff")
                            }
                            (_, Link::Connected) => {
                                tracing::warn!(socket = %self.socket.display(), %error, "lost the kubelet pod-resources API; retrying with backoff")
                            }
                            _ => {
                                tracing::warn!(socket = %self.socket.display(), %error, "kubelet pod-resources API unavailable; retrying with backoff")
                            }
                        }
                        link = now;
                    }
                    backoff.failed()
                }
            };
            drop(shared);
            tokio::time::sleep(wait).await;
        }
    }

    /// One List (and GetAllocatableResources), connecting first if there is no channel.
    async fn poll(&self, client: &mut Option<Client>) -> Result<KubeletView, PollError> {
        let c = match client {
            Some(c) => c,
            None => client.insert(connect(&self.socket).await?),
        };
        let list = timed("List", c.list(api::ListPodResourcesRequest {}))
            .await?
            .into_inner();
        let allocatable = match timed(
            "GetAllocatableResources",
            c.get_allocatable_resources(api::AllocatableResourcesRequest {}),
        )
        .await
        {
            Ok(r) => allocatable(r.into_inner(), &self.prefixes),
            // Not served by this kubelet: Unimplemented before 1.21, Unknown ("Pod Resources
            // API GetAllocatableResources disabled") with the feature gate off. List answered on
            // this channel just now, so any status here is the kubelet's answer, not a broken
            // link: allocations stand, allocatable is unknown.
            Err(PollError::Rpc { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(KubeletView {
            claims: claims(&list),
            allocations: allocations(list, &self.prefixes),
            allocatable,
            fetched_at: Some(SystemTime::now()),
            available: true,
        })
    }
}

/// Opens one HTTP/2 channel over the unix socket; it is reused until an RPC fails.
async fn connect(socket: &Path) -> Result<Client, PollError> {
    let path = socket.to_path_buf();
    let connector = tower::service_fn(move |_: Uri| {
        let path = path.clone();
        async move { UnixStream::connect(path).await.map(TokioIo::new) }
    });
    let endpoint = Endpoint::from_static(DUMMY_URI);
    let channel =
        match tokio::time::timeout(RPC_TIMEOUT, endpoint.connect_with_connector(connector)).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                // A socket file that is gone means no kubelet (yet); anything else is a fault. (One
                // stat of a local path: not worth a blocking-pool hop.)
                if std::fs::symlink_metadata(socket).is_err() {
                    return Err(PollError::Absent(socket.to_path_buf()));
                }
                return Err(PollError::Connect {
                    path: socket.to_path_buf(),
                    source: Box::new(e),
                });
            }
            Err(_) => return Err(PollError::Timeout("connect")),
        };
    Ok(PodResourcesListerClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES))
}

/// Runs one RPC under [`RPC_TIMEOUT`]; dropping the future on timeout resets the stream.
async fn timed<T>(
    rpc: &'static str,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<tonic::Response<T>, PollError> {
    match tokio::time::timeout(RPC_TIMEOUT, call).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(status)) => Err(PollError::Rpc { rpc, status }),
        Err(_) => Err(PollError::Timeout(rpc)),
    }
}

fn wanted(resource: &str, prefixes: &[String]) -> bool {
    prefixes.is_empty() || prefixes.iter().any(|p| resource.starts_with(p.as_str()))
}

/// Flattens List into one entry per (container, resource). The kubelet sends one
/// `ContainerDevices` per device (each with its own NUMA topology), so entries of the same
/// resource are merged, keeping the kubelet's order.
fn allocations(list: api::ListPodResourcesResponse, prefixes: &[String]) -> Vec<ContainerDevices> {
    let mut out = Vec::new();
    for pod in list.pod_resources {
        for container in pod.containers {
            let first = out.len();
            for devices in container.devices {
                if !wanted(&devices.resource_name, prefixes) {
                    continue;
                }
                let slot = out[first..]
                    .iter_mut()
                    .find(|d: &&mut ContainerDevices| d.resource_name == devices.resource_name);
                match slot {
                    Some(d) => d.device_ids.extend(devices.device_ids),
                    None => out.push(ContainerDevices {
                        namespace: pod.namespace.clone(),
                        pod: pod.name.clone(),
                        container: container.name.clone(),
                        resource_name: devices.resource_name,
                        device_ids: devices.device_ids,
                    }),
                }
            }
        }
    }
    out
}

/// Every container's DRA claims from List, with their devices; claims without devices (a
/// container that references no claim has none at all) are left out.
fn claims(list: &api::ListPodResourcesResponse) -> Vec<ContainerClaim> {
    let mut out = Vec::new();
    for pod in &list.pod_resources {
        for container in &pod.containers {
            for dr in &container.dynamic_resources {
                let devices: Vec<ClaimDevice> = dr
                    .claim_resources
                    .iter()
                    .map(|r| ClaimDevice {
                        driver: r.driver_name.clone(),
                        pool: r.pool_name.clone(),
                        device: r.device_name.clone(),
                        cdi_devices: r.cdi_devices.iter().map(|c| c.name.clone()).collect(),
                    })
                    .collect();
                if devices.is_empty() {
                    continue;
                }
                out.push(ContainerClaim {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    container: container.name.clone(),
                    claim_namespace: dr.claim_namespace.clone(),
                    claim_name: dr.claim_name.clone(),
                    devices,
                });
            }
        }
    }
    out
}

/// Groups GetAllocatableResources by resource name, keeping the kubelet's order.
fn allocatable(
    resp: api::AllocatableResourcesResponse,
    prefixes: &[String],
) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for devices in resp.devices {
        if !wanted(&devices.resource_name, prefixes) {
            continue;
        }
        match out.iter_mut().find(|(r, _)| *r == devices.resource_name) {
            Some((_, ids)) => ids.extend(devices.device_ids),
            None => out.push((devices.resource_name, devices.device_ids)),
        }
    }
    out
}

/// `error: cause: cause`, for one log line.
fn error_chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        source = cause.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::api::{
        AllocatableResourcesResponse, ContainerResources, ListPodResourcesResponse,
        PodResources as ApiPod,
    };
    use super::*;

    fn devs(resource: &str, ids: &[&str]) -> api::ContainerDevices {
        api::ContainerDevices {
            resource_name: resource.into(),
            device_ids: ids.iter().map(|s| s.to_string()).collect(),
            topology: None,
        }
    }

    fn prefixes() -> Vec<String> {
        vec!["nvidia.com/".into(), "amd.com/".into()]
    }

    #[test]
    fn per_device_entries_merge_and_other_resources_drop() {
        let list = ListPodResourcesResponse {
            pod_resources: vec![ApiPod {
                name: "trainer-0".into(),
                namespace: "ml".into(),
                containers: vec![
                    ContainerResources {
                        name: "main".into(),
                        devices: vec![
                            devs("nvidia.com/gpu", &["GPU-a"]),
                            devs("example.com/nic", &["eth1"]),
                            devs("nvidia.com/gpu", &["GPU-b"]),
                        ],
                        ..ContainerResources::default()
                    },
                    ContainerResources {
                        name: "sidecar".into(),
                        devices: vec![devs("example.com/nic", &["eth2"])],
                        ..ContainerResources::default()
                    },
                ],
            }],
        };
        assert_eq!(
            allocations(list, &prefixes()),
            [ContainerDevices {
                namespace: "ml".into(),
                pod: "trainer-0".into(),
                container: "main".into(),
                resource_name: "nvidia.com/gpu".into(),
                device_ids: vec!["GPU-a".into(), "GPU-b".into()],
            }]
        );
    }

    #[test]
    fn claims_keep_every_driver_and_drop_empty_ones() {
        let cdi = |n: &str| api::CdiDevice { name: n.into() };
        let resource = |driver: &str, device: &str, names: &[&str]| api::ClaimResource {
            cdi_devices: names.iter().map(|n| cdi(n)).collect(),
            driver_name: driver.into(),
            pool_name: "node-1".into(),
            device_name: device.into(),
        };
        let list = ListPodResourcesResponse {
            pod_resources: vec![ApiPod {
                name: "trainer-0".into(),
                namespace: "ml".into(),
                containers: vec![ContainerResources {
                    name: "main".into(),
                    dynamic_resources: vec![
                        api::DynamicResource {
                            claim_name: "gpus".into(),
                            claim_namespace: "ml".into(),
                            claim_resources: vec![
                                resource(
                                    "gpu.nvidia.com",
                                    "gpu-0",
                                    &["k8s.gpu.nvidia.com/claim=u-gpu-0"],
                                ),
                                resource("dra.example.com", "eth1", &[]),
                            ],
                        },
                        // A claim whose driver prepared nothing for this container.
                        api::DynamicResource {
                            claim_name: "empty".into(),
                            claim_namespace: "ml".into(),
                            claim_resources: vec![],
                        },
                    ],
                    ..ContainerResources::default()
                }],
            }],
        };
        let got = claims(&list);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].container.as_str(), got[0].claim_name.as_str()),
            ("main", "gpus")
        );
        assert_eq!(
            got[0].devices,
            [
                ClaimDevice {
                    driver: "gpu.nvidia.com".into(),
                    pool: "node-1".into(),
                    device: "gpu-0".into(),
                    cdi_devices: vec!["k8s.gpu.nvidia.com/claim=u-gpu-0".into()],
                },
                ClaimDevice {
                    driver: "dra.example.com".into(),
                    pool: "node-1".into(),
                    device: "eth1".into(),
                    cdi_devices: vec![],
                },
            ]
        );
        // Device-plugin allocations are unaffected.
        assert!(allocations(list, &prefixes()).is_empty());
    }

    #[test]
    fn allocatable_groups_by_resource() {
        let resp = AllocatableResourcesResponse {
            devices: vec![
                devs("nvidia.com/gpu", &["GPU-a"]),
                devs("amd.com/gpu", &["0000:19:00.0"]),
                devs("nvidia.com/gpu", &["GPU-b"]),
                devs("example.com/nic", &["eth1"]),
            ],
            ..AllocatableResourcesResponse::default()
        };
        assert_eq!(
            allocatable(resp, &prefixes()),
            [
                (
                    "nvidia.com/gpu".to_string(),
                    vec!["GPU-a".to_string(), "GPU-b".to_string()]
                ),
                ("amd.com/gpu".to_string(), vec!["0000:19:00.0".to_string()]),
            ]
        );
    }

    #[test]
    fn no_prefixes_keep_everything() {
        assert!(wanted("example.com/nic", &[]));
        assert!(!wanted("example.com/nic", &prefixes()));
        assert!(wanted("nvidia.com/mig-1g.10gb", &prefixes()));
    }

    #[test]
    fn outside_a_runtime_the_view_stays_unavailable() {
        let pr = PodResources::spawn(PathBuf::from("/nonexistent"), RPC_TIMEOUT, prefixes());
        assert_eq!(*pr.latest(), KubeletView::default());
    }
}
