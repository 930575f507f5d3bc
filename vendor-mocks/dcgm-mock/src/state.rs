//! The mock host engine's state: whether `dcgmInit` ran, the scenario file (re-read whenever
//! it changes), the connections and what each set up (groups, field groups, watches), and
//! the host engine going down and coming back.
//!
//! The engine's epoch counts the times the scenario was seen with `dcgm: {hostengine: down}`;
//! a connection belongs to the epoch it was made in, so one made before the engine went down
//! stays dead after it is up again (`DCGM_ST_CONNECTION_NOT_VALID`), as a client of a
//! restarted nv-hostengine finds. An embedded engine lives in the caller and never goes down.
//!
//! Every call takes what it needs under the lock and pays its cost and delay after releasing
//! it (see `api::on_connection`), so a slow call never holds up the others.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nvidia_ml_mock::scenario::dcgm::HostEngine;
use nvidia_ml_mock::scenario::file::{complain, LoadError, ScenarioFile};
use nvidia_ml_mock::scenario::{dcgm, Device, Family, Gpm, MigInstance, Scenario};
use nvidia_ml_mock::state::SCENARIO_ENV;

use crate::ffi::{self, DcgmReturn, EntityPair, FieldGroupId, GroupId, Handle};
use crate::DcgmResult;

/// `DCGM_ST_UNINITIALIZED`, `DCGM_ST_INIT_ERROR`, `DCGM_ST_NOT_CONFIGURED` (`dcgm_structs.h`).
pub const ST_UNINITIALIZED: DcgmReturn = -10;
pub const ST_INIT_ERROR: DcgmReturn = -7;
pub const ST_NOT_CONFIGURED: DcgmReturn = -5;
/// `DCGM_MAX_INSTANCES_PER_GPU` (`dcgm_structs.h`): GPU instance entity ids are
/// `gpu id x 8 + slot`, as DCGM numbers them.
pub const MAX_INSTANCES_PER_GPU: u32 = 8;

/// A field group: its engine-wide unique name and its fields.
#[derive(Debug, Clone)]
pub struct FieldGroup {
    pub name: String,
    pub fields: Vec<u16>,
}

/// One `dcgmWatchFields`: which entities and fields, since when, how often.
#[derive(Debug, Clone)]
pub struct Watch {
    pub group: GroupId,
    pub field_group: FieldGroupId,
    pub entities: Vec<EntityPair>,
    pub fields: Vec<u16>,
    pub since: Instant,
    /// `since` as DCGM stamps values: microseconds since 1970.
    pub since_us: i64,
    pub every: Duration,
}

/// One client connection (or embedded engine) and what it made.
#[derive(Debug, Default)]
pub struct Connection {
    pub embedded: bool,
    epoch: u64,
    pub groups: BTreeMap<GroupId, Vec<EntityPair>>,
    pub field_groups: BTreeMap<FieldGroupId, FieldGroup>,
    pub watches: Vec<Watch>,
}

/// The host engine.
pub struct Engine {
    file: Option<ScenarioFile>,
    epoch: u64,
    was_down: bool,
    next_id: usize,
    pub connections: BTreeMap<Handle, Connection>,
}

static ENGINE: Mutex<Engine> = Mutex::new(Engine {
    file: None,
    epoch: 0,
    was_down: false,
    next_id: 1,
    connections: BTreeMap::new(),
});

pub fn lock() -> MutexGuard<'static, Engine> {
    ENGINE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Microseconds since 1970, as DCGM stamps values.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Engine {
    /// `dcgmInit`: reads `MOCK_NVML_SCENARIO` (the first time). A missing variable, an
    /// unreadable or an invalid file is `DCGM_ST_INIT_ERROR`, with one line on stderr.
    pub fn init(&mut self) -> DcgmResult {
        if self.file.is_some() {
            return Ok(());
        }
        let Some(path) = std::env::var_os(SCENARIO_ENV).filter(|p| !p.is_empty()) else {
            complain(
                "dcgm-mock",
                &format!("{SCENARIO_ENV} is not set; dcgmInit fails with DCGM_ST_INIT_ERROR"),
            );
            return Err(ST_INIT_ERROR);
        };
        let path = std::path::absolute(&path).unwrap_or_else(|_| PathBuf::from(path));
        match ScenarioFile::load("dcgm-mock", path.clone()) {
            Ok(file) => {
                nvidia_ml_mock::cost::set_costly(!file.scenario().costs.is_free());
                self.file = Some(file);
                Ok(())
            }
            Err(LoadError::Unreadable(e)) => {
                complain(
                    "dcgm-mock",
                    &format!(
                        "cannot read scenario {}: {e}; dcgmInit fails",
                        path.display()
                    ),
                );
                Err(ST_INIT_ERROR)
            }
            Err(LoadError::Invalid(e)) => {
                complain(
                    "dcgm-mock",
                    &format!(
                        "scenario {} is invalid; dcgmInit fails: {e}",
                        path.display()
                    ),
                );
                Err(ST_INIT_ERROR)
            }
        }
    }

    /// `dcgmShutdown`: every connection and embedded engine ends.
    pub fn shutdown(&mut self) -> DcgmResult {
        if self.file.take().is_none() {
            return Err(ST_UNINITIALIZED);
        }
        self.connections.clear();
        Ok(())
    }

    /// The scenario in force, re-read if the file changed, with the host engine's state noted.
    pub fn scenario(&mut self) -> DcgmResult<Arc<Scenario>> {
        let file = self.file.as_mut().ok_or(ST_UNINITIALIZED)?;
        if file.refresh() {
            nvidia_ml_mock::cost::set_costly(!file.scenario().costs.is_free());
        }
        let scenario = Arc::clone(file.scenario());
        let down = scenario.dcgm.hostengine == HostEngine::Down;
        if down && !self.was_down {
            self.epoch += 1;
        }
        self.was_down = down;
        Ok(scenario)
    }

    /// Whether the host engine answers now.
    pub fn engine_up(&self) -> bool {
        !self.was_down
    }

    /// A fresh id for a connection, group or field group (never reused).
    pub fn new_id(&mut self) -> usize {
        self.next_id += 1;
        self.next_id
    }

    /// A new connection of the current epoch.
    pub fn connect(&mut self, embedded: bool) -> Handle {
        let handle = self.new_id();
        self.connections.insert(
            handle,
            Connection {
                embedded,
                epoch: self.epoch,
                ..Connection::default()
            },
        );
        handle
    }

    /// The connection behind `handle`, if it is alive: `DCGM_ST_BADPARAM` for a handle the
    /// engine never gave, `DCGM_ST_CONNECTION_NOT_VALID` while the host engine is down or for
    /// a connection made before it went down.
    pub fn connection(&mut self, handle: Handle) -> DcgmResult<&mut Connection> {
        let up = self.engine_up();
        let epoch = self.epoch;
        let conn = self.connections.get_mut(&handle).ok_or(ffi::ST_BADPARAM)?;
        if !conn.embedded && (!up || conn.epoch != epoch) {
            return Err(ffi::ST_CONNECTION_NOT_VALID);
        }
        Ok(conn)
    }
}

/// A DCGM entity of the scenario: a GPU (its index is its DCGM GPU id) or a MIG GPU instance.
#[derive(Debug, Clone, Copy)]
pub enum Entity<'a> {
    Gpu {
        index: usize,
        device: &'a Device,
    },
    Instance {
        index: usize,
        slot: usize,
        device: &'a Device,
        instance: &'a MigInstance,
    },
}

impl<'a> Entity<'a> {
    /// The entity `pair` names in `scenario`, if any.
    pub fn resolve(scenario: &'a Scenario, pair: EntityPair) -> Option<Entity<'a>> {
        match pair.entity_group_id {
            ffi::FE_GPU => {
                let index = pair.entity_id as usize;
                let device = scenario
                    .devices
                    .get(index)
                    .filter(|_| index < ffi::MAX_NUM_DEVICES)?;
                Some(Entity::Gpu { index, device })
            }
            ffi::FE_GPU_I => {
                let index = (pair.entity_id / MAX_INSTANCES_PER_GPU) as usize;
                let slot = (pair.entity_id % MAX_INSTANCES_PER_GPU) as usize;
                let device = scenario.devices.get(index)?;
                let instance = device.mig.as_ref()?.get(slot)?;
                Some(Entity::Instance {
                    index,
                    slot,
                    device,
                    instance,
                })
            }
            _ => None,
        }
    }

    /// The GPU whose faults (`errors`, `delays_ms`) apply.
    pub fn device(&self) -> &'a Device {
        match self {
            Entity::Gpu { device, .. } | Entity::Instance { device, .. } => device,
        }
    }

    pub fn uuid(&self) -> &'a str {
        match self {
            Entity::Gpu { device, .. } => &device.uuid,
            Entity::Instance { instance, .. } => &instance.uuid,
        }
    }

    /// Its `dcgm_profiling`; `None`: DCGM has no profiling for it.
    pub fn profiling(&self) -> Option<&'a Gpm> {
        match self {
            Entity::Gpu { device, .. } => device.dcgm_profiling.as_ref(),
            Entity::Instance { instance, .. } => instance.dcgm_profiling.as_ref(),
        }
    }

    /// The `dcgm_values` error its GPU's scenario sets, as a DCGM status.
    pub fn error(&self) -> Option<DcgmReturn> {
        let code = self.device().errors.get(&Family::DcgmValues)?;
        dcgm::status(*code)
    }
}

/// The delay a call pays and the error it answers for `family`: the top-level ones, and for
/// `dcgm_values` the longest delay of the GPUs of `entities` (their errors act per entity).
pub fn faults(
    scenario: &Scenario,
    family: Family,
    entities: &[EntityPair],
) -> (Duration, Option<DcgmReturn>) {
    let (top, error) = scenario.node_fault(family);
    let mut ms = top.unwrap_or(0);
    if family == Family::DcgmValues {
        for e in entities
            .iter()
            .filter_map(|p| Entity::resolve(scenario, *p))
        {
            ms = ms.max(e.device().delays_ms.get(&family).copied().unwrap_or(0));
        }
    }
    (Duration::from_millis(ms), error.and_then(dcgm::status))
}
