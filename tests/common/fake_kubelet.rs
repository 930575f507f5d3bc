//! A fake kubelet: serves the pod-resources v1 API on a unix socket, answering what the test
//! sets, on its own thread and tokio runtime. It works from plain `#[test]` functions, from
//! `#[tokio::test]`, and for an agent running as a separate process (it only needs the path).
//!
//! Like the real kubelet, it sends one `ContainerDevices` per device ID (each device carries
//! its own NUMA topology upstream), so clients must merge entries of the same resource.
//!
//! DRA claims (`ContainerResources.dynamic_resources`) are answered as a kubelet 1.31 or later
//! builds them (`GetDynamicResources` in `pkg/kubelet/cm/container_manager_linux.go`): one
//! `DynamicResource` per claim a container references, one `ClaimResource` per device with
//! its driver, pool and device name, and CDI names appended cumulatively per driver. A claim
//! that several containers reference appears under each of them. `GetAllocatableResources`
//! carries no DRA devices, as upstream's does not.
//!
//! ```ignore
//! let mut kubelet = FakeKubelet::start_at(rootfs.join("var/lib/kubelet/pod-resources/kubelet.sock"));
//! kubelet.set_pods(vec![PodSpec::new("llm", "vllm-0").container("server", &[("nvidia.com/gpu", &["GPU-…"])])]);
//! kubelet.stop();     // the socket goes away, open connections are cut
//! kubelet.restart();  // same path, same answers
//! ```
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use gpu_pod_exporter::attribute::podresources::api::{
    self,
    pod_resources_lister_server::{PodResourcesLister, PodResourcesListerServer},
};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tokio_stream::StreamExt;
use tonic::{Code, Request, Response, Status};

/// One pod as `List` reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub containers: Vec<ContainerSpec>,
}

/// One container and its devices: `(resource name, device IDs)`, and its DRA claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub devices: Vec<(String, Vec<String>)>,
    pub claims: Vec<ClaimSpec>,
}

/// A ResourceClaim as the kubelet reports it for a container that references it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimSpec {
    pub namespace: String,
    pub name: String,
    pub devices: Vec<ClaimDeviceSpec>,
}

/// One allocated device of a claim. `driver`, `pool` and `device` empty: as a kubelet before
/// 1.31 reports it (CDI names only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimDeviceSpec {
    pub driver: String,
    pub pool: String,
    pub device: String,
    pub cdi_devices: Vec<String>,
}

impl ClaimSpec {
    pub fn new(namespace: &str, name: &str) -> ClaimSpec {
        ClaimSpec {
            namespace: namespace.into(),
            name: name.into(),
            devices: Vec::new(),
        }
    }

    /// Adds a device `driver/pool/device` with its CDI names.
    pub fn device(mut self, driver: &str, pool: &str, device: &str, cdi: &[&str]) -> ClaimSpec {
        self.devices.push(ClaimDeviceSpec {
            driver: driver.into(),
            pool: pool.into(),
            device: device.into(),
            cdi_devices: cdi.iter().map(|s| s.to_string()).collect(),
        });
        self
    }
}

impl PodSpec {
    pub fn new(namespace: &str, name: &str) -> PodSpec {
        PodSpec {
            namespace: namespace.into(),
            name: name.into(),
            containers: Vec::new(),
        }
    }

    /// Adds a container with `(resource name, device IDs)` pairs (none for a CPU-only one).
    pub fn container(mut self, name: &str, devices: &[(&str, &[&str])]) -> PodSpec {
        self.containers.push(ContainerSpec {
            name: name.into(),
            devices: owned(devices),
            claims: Vec::new(),
        });
        self
    }

    /// Adds a DRA claim to the container named `container` (added first if absent).
    pub fn claim(mut self, container: &str, claim: ClaimSpec) -> PodSpec {
        if !self.containers.iter().any(|c| c.name == container) {
            self = self.container(container, &[]);
        }
        for c in &mut self.containers {
            if c.name == container {
                c.claims.push(claim.clone());
            }
        }
        self
    }
}

fn owned(devices: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    devices
        .iter()
        .map(|(r, ids)| (r.to_string(), ids.iter().map(|s| s.to_string()).collect()))
        .collect()
}

/// What the fake answers; shared by every serving session.
#[derive(Debug, Default)]
struct Behaviour {
    pods: Vec<PodSpec>,
    allocatable: Vec<(String, Vec<String>)>,
    /// `GetAllocatableResources` fails with this code (`Unimplemented`: kubelet before 1.21;
    /// `Unknown`: the feature gate off).
    allocatable_error: Option<Code>,
    /// Every RPC waits this long before answering (a hung kubelet).
    delay: Duration,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicUsize,
    list_calls: AtomicUsize,
}

/// A running (or stopped) fake kubelet. Dropping it stops it.
pub struct FakeKubelet {
    socket: PathBuf,
    behaviour: Arc<Mutex<Behaviour>>,
    counters: Arc<Counters>,
    serving: Option<Serving>,
}

struct Serving {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: JoinHandle<()>,
}

impl FakeKubelet {
    /// Serves on `<dir>/kubelet.sock`.
    pub fn start(dir: &Path) -> FakeKubelet {
        FakeKubelet::start_at(dir.join("kubelet.sock"))
    }

    /// Serves on exactly `socket` (parent folders are created), e.g.
    /// `<rootfs>/var/lib/kubelet/pod-resources/kubelet.sock` for the agent's end-to-end tests.
    pub fn start_at(socket: PathBuf) -> FakeKubelet {
        let mut k = FakeKubelet {
            socket,
            behaviour: Arc::default(),
            counters: Arc::default(),
            serving: None,
        };
        k.restart();
        k
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    pub fn is_running(&self) -> bool {
        self.serving.is_some()
    }

    pub fn set_pods(&self, pods: Vec<PodSpec>) {
        self.behaviour().pods = pods;
    }

    /// What `GetAllocatableResources` reports: `(resource name, device IDs)`.
    pub fn set_allocatable(&self, devices: &[(&str, &[&str])]) {
        self.behaviour().allocatable = owned(devices);
    }

    /// `Some(Code::Unimplemented)` answers `GetAllocatableResources` like a kubelet before 1.21,
    /// `Some(Code::Unknown)` like one with `KubeletPodResourcesGetAllocatable` off; `None` serves it.
    pub fn set_allocatable_error(&self, code: Option<Code>) {
        self.behaviour().allocatable_error = code;
    }

    /// Every RPC received from now on waits `delay` before answering.
    pub fn set_delay(&self, delay: Duration) {
        self.behaviour().delay = delay;
    }

    /// Connections accepted since `start`, over every restart.
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// `List` calls received since `start`, over every restart.
    pub fn list_calls(&self) -> usize {
        self.counters.list_calls.load(Ordering::SeqCst)
    }

    /// Stops serving like a kubelet that died: open connections are cut, in-flight calls
    /// abandoned, and the socket file removed. Does nothing if stopped already.
    pub fn stop(&mut self) {
        if let Some(s) = self.serving.take() {
            let _ = s.stop.send(());
            let _ = s.thread.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Serves again on the same path with the same answers (stopping first if running).
    pub fn restart(&mut self) {
        self.stop();
        if let Some(parent) = self.socket.parent() {
            std::fs::create_dir_all(parent).expect("create the socket's folder");
        }
        let listener = {
            let std_listener = std::os::unix::net::UnixListener::bind(&self.socket)
                .unwrap_or_else(|e| panic!("bind {}: {e}", self.socket.display()));
            std_listener
                .set_nonblocking(true)
                .expect("non-blocking listener");
            std_listener
        };
        let service = PodResourcesListerServer::new(Service {
            behaviour: Arc::clone(&self.behaviour),
            counters: Arc::clone(&self.counters),
        });
        let counters = Arc::clone(&self.counters);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-kubelet".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake kubelet runtime");
                rt.block_on(async move {
                    let listener = UnixListener::from_std(listener).expect("tokio listener");
                    let incoming = UnixListenerStream::new(listener).map(move |conn| {
                        if conn.is_ok() {
                            counters.connections.fetch_add(1, Ordering::SeqCst);
                        }
                        conn
                    });
                    let server =
                        tonic::transport::Server::builder().serve_with_incoming(service, incoming);
                    tokio::select! {
                        r = server => if let Err(e) = r { eprintln!("fake kubelet: {e}") },
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime cuts every connection task it still holds.
                rt.shutdown_background();
            })
            .expect("spawn the fake kubelet thread");
        self.serving = Some(Serving { stop, thread });
    }

    fn behaviour(&self) -> MutexGuard<'_, Behaviour> {
        self.behaviour
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Service {
    behaviour: Arc<Mutex<Behaviour>>,
    counters: Arc<Counters>,
}

impl Service {
    /// Reads what to answer, after the configured delay.
    async fn answer<T>(&self, f: impl FnOnce(&Behaviour) -> T) -> T {
        let delay = self.lock().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        f(&self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Behaviour> {
        self.behaviour
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn per_device(resource: &str, ids: &[String]) -> Vec<api::ContainerDevices> {
    ids.iter()
        .map(|id| api::ContainerDevices {
            resource_name: resource.into(),
            device_ids: vec![id.clone()],
            topology: Some(api::TopologyInfo {
                nodes: vec![api::NumaNode { id: 0 }],
            }),
        })
        .collect()
}

/// As the kubelet builds it: the CDI names of one driver's devices accumulate, so each later
/// device of that driver also carries the earlier ones' names.
fn dynamic_resource(c: &ClaimSpec) -> api::DynamicResource {
    let mut cdi_by_driver: Vec<(String, Vec<api::CdiDevice>)> = Vec::new();
    let mut claim_resources = Vec::new();
    for d in &c.devices {
        let slot = match cdi_by_driver.iter().position(|(drv, _)| *drv == d.driver) {
            Some(i) => i,
            None => {
                cdi_by_driver.push((d.driver.clone(), Vec::new()));
                cdi_by_driver.len() - 1
            }
        };
        let cdi = &mut cdi_by_driver[slot].1;
        cdi.extend(
            d.cdi_devices
                .iter()
                .map(|n| api::CdiDevice { name: n.clone() }),
        );
        claim_resources.push(api::ClaimResource {
            cdi_devices: cdi.clone(),
            driver_name: d.driver.clone(),
            pool_name: d.pool.clone(),
            device_name: d.device.clone(),
        });
    }
    api::DynamicResource {
        claim_name: c.name.clone(),
        claim_namespace: c.namespace.clone(),
        claim_resources,
    }
}

fn pod_resources(p: &PodSpec) -> api::PodResources {
    api::PodResources {
        name: p.name.clone(),
        namespace: p.namespace.clone(),
        containers: p
            .containers
            .iter()
            .map(|c| api::ContainerResources {
                name: c.name.clone(),
                devices: c
                    .devices
                    .iter()
                    .flat_map(|(r, ids)| per_device(r, ids))
                    .collect(),
                dynamic_resources: c.claims.iter().map(dynamic_resource).collect(),
                ..api::ContainerResources::default()
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl PodResourcesLister for Service {
    async fn list(
        &self,
        _: Request<api::ListPodResourcesRequest>,
    ) -> Result<Response<api::ListPodResourcesResponse>, Status> {
        self.counters.list_calls.fetch_add(1, Ordering::SeqCst);
        let pod_resources = self
            .answer(|b| b.pods.iter().map(pod_resources).collect())
            .await;
        Ok(Response::new(api::ListPodResourcesResponse {
            pod_resources,
        }))
    }

    async fn get_allocatable_resources(
        &self,
        _: Request<api::AllocatableResourcesRequest>,
    ) -> Result<Response<api::AllocatableResourcesResponse>, Status> {
        let answer = self
            .answer(|b| match b.allocatable_error {
                // The messages real kubelets send in these two cases.
                Some(Code::Unimplemented) => Err(Status::unimplemented(
                    "unknown method GetAllocatableResources for service v1.PodResourcesLister",
                )),
                Some(code) => Err(Status::new(
                    code,
                    "Pod Resources API GetAllocatableResources disabled",
                )),
                None => Ok(b
                    .allocatable
                    .iter()
                    .flat_map(|(r, ids)| per_device(r, ids))
                    .collect()),
            })
            .await;
        Ok(Response::new(api::AllocatableResourcesResponse {
            devices: answer?,
            ..api::AllocatableResourcesResponse::default()
        }))
    }

    async fn get(
        &self,
        req: Request<api::GetPodResourcesRequest>,
    ) -> Result<Response<api::GetPodResourcesResponse>, Status> {
        let req = req.into_inner();
        let pod = self
            .answer(|b| {
                b.pods
                    .iter()
                    .find(|p| p.name == req.pod_name && p.namespace == req.pod_namespace)
                    .map(pod_resources)
            })
            .await;
        match pod {
            Some(p) => Ok(Response::new(api::GetPodResourcesResponse {
                pod_resources: Some(p),
            })),
            None => Err(Status::not_found(format!(
                "pod {} not found in namespace {}",
                req.pod_name, req.pod_namespace
            ))),
        }
    }
}
