//! PLACEHOLDER written by the lead so the crate compiles: the pod-resources helper replaces this whole file.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDevices {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub resource_name: String,
    pub device_ids: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeletView {
    pub allocations: Vec<ContainerDevices>,
    pub allocatable: Vec<(String, Vec<String>)>,
    pub fetched_at: Option<std::time::SystemTime>,
    pub available: bool,
}
