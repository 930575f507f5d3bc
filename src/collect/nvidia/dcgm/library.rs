//! The DCGM library, loaded at run time from `--dcgm.library`, never linked (the default
//! binary starts on a node without DCGM): the functions the agent calls, with the signatures
//! of `dcgm_agent.h` (github.com/NVIDIA/DCGM, `dcgmlib/`).

use std::ffi::{c_char, c_int, c_longlong, c_uint};
use std::path::Path;

use super::ffi::{
    ConnectV2Params, DcgmReturn, EntityPair, FieldGroupId, FieldValueV2, GroupId, Handle,
    MigHierarchyV2, ST_FUNCTION_NOT_FOUND, ST_LIBRARY_NOT_FOUND,
};

/// The DCGM functions the agent calls, with the signatures of `dcgm_agent.h`.
pub struct Api {
    /// `dcgmReturn_t dcgmInit(void)`.
    pub init: unsafe extern "C" fn() -> DcgmReturn,
    /// `dcgmConnect_v2(const char *ipAddress, dcgmConnectV2Params_t *, dcgmHandle_t *)`.
    pub connect_v2:
        unsafe extern "C" fn(*const c_char, *mut ConnectV2Params, *mut Handle) -> DcgmReturn,
    /// `dcgmDisconnect(dcgmHandle_t)`.
    pub disconnect: unsafe extern "C" fn(Handle) -> DcgmReturn,
    /// `dcgmStartEmbedded(dcgmOperationMode_t, dcgmHandle_t *)`.
    pub start_embedded: unsafe extern "C" fn(c_int, *mut Handle) -> DcgmReturn,
    /// `dcgmStopEmbedded(dcgmHandle_t)`.
    pub stop_embedded: unsafe extern "C" fn(Handle) -> DcgmReturn,
    /// `dcgmGetAllSupportedDevices(dcgmHandle_t, unsigned int gpuIdList[DCGM_MAX_NUM_DEVICES],
    /// int *count)`.
    pub get_all_supported_devices:
        unsafe extern "C" fn(Handle, *mut c_uint, *mut c_int) -> DcgmReturn,
    /// `dcgmGetGpuInstanceHierarchy(dcgmHandle_t, dcgmMigHierarchy_v2 *)`.
    pub get_gpu_instance_hierarchy: unsafe extern "C" fn(Handle, *mut MigHierarchyV2) -> DcgmReturn,
    /// `dcgmGroupCreate(dcgmHandle_t, dcgmGroupType_t, const char *groupName, dcgmGpuGrp_t *)`.
    pub group_create:
        unsafe extern "C" fn(Handle, c_int, *const c_char, *mut GroupId) -> DcgmReturn,
    /// `dcgmGroupDestroy(dcgmHandle_t, dcgmGpuGrp_t)`.
    pub group_destroy: unsafe extern "C" fn(Handle, GroupId) -> DcgmReturn,
    /// `dcgmGroupAddEntity(dcgmHandle_t, dcgmGpuGrp_t, dcgm_field_entity_group_t,
    /// dcgm_field_eid_t)`.
    pub group_add_entity: unsafe extern "C" fn(Handle, GroupId, c_uint, c_uint) -> DcgmReturn,
    /// `dcgmFieldGroupCreate(dcgmHandle_t, int numFieldIds, unsigned short *fieldIds,
    /// const char *fieldGroupName, dcgmFieldGrp_t *)`.
    pub field_group_create: unsafe extern "C" fn(
        Handle,
        c_int,
        *mut u16,
        *const c_char,
        *mut FieldGroupId,
    ) -> DcgmReturn,
    /// `dcgmWatchFields(dcgmHandle_t, dcgmGpuGrp_t, dcgmFieldGrp_t, long long updateFreq (µs),
    /// double maxKeepAge (s), int maxKeepSamples)`.
    pub watch_fields:
        unsafe extern "C" fn(Handle, GroupId, FieldGroupId, c_longlong, f64, c_int) -> DcgmReturn,
    /// `dcgmUnwatchFields(dcgmHandle_t, dcgmGpuGrp_t, dcgmFieldGrp_t)`.
    pub unwatch_fields: unsafe extern "C" fn(Handle, GroupId, FieldGroupId) -> DcgmReturn,
    /// `dcgmEntitiesGetLatestValues(dcgmHandle_t, dcgmGroupEntityPair_t entities[],
    /// unsigned int entityCount, unsigned short fields[], unsigned int fieldCount,
    /// unsigned int flags, dcgmFieldValue_v2 values[])`: `values` holds entityCount x
    /// fieldCount records.
    pub entities_get_latest_values: unsafe extern "C" fn(
        Handle,
        *mut EntityPair,
        c_uint,
        *mut u16,
        c_uint,
        c_uint,
        *mut FieldValueV2,
    ) -> DcgmReturn,
}

/// Why the library could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot load {library}: {source}")]
    Library {
        library: String,
        source: libloading::Error,
    },
    #[error("{library} has no {symbol}: {source}")]
    Symbol {
        library: String,
        symbol: &'static str,
        source: libloading::Error,
    },
}

impl LoadError {
    /// The DCGM status the agent counts it as.
    pub fn status(&self) -> DcgmReturn {
        match self {
            LoadError::Library { .. } => ST_LIBRARY_NOT_FOUND,
            LoadError::Symbol { .. } => ST_FUNCTION_NOT_FOUND,
        }
    }
}

impl Api {
    /// Loads `library` and its functions. The library is never unloaded (leaked once per
    /// process), so the function pointers stay valid on any thread for the life of the agent.
    pub fn load(library: &Path) -> Result<&'static Api, LoadError> {
        let name = library.display().to_string();
        // SAFETY: loading runs the library's initializers; DCGM's are those of any C++ library.
        let lib =
            unsafe { libloading::Library::new(library) }.map_err(|source| LoadError::Library {
                library: name.clone(),
                source,
            })?;
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        macro_rules! sym {
            ($name:literal) => {{
                // SAFETY: the symbol's type is the one `dcgm_agent.h` declares (see `Api`).
                let s = unsafe { lib.get(concat!($name, "\0").as_bytes()) }.map_err(|source| {
                    LoadError::Symbol {
                        library: name.clone(),
                        symbol: $name,
                        source,
                    }
                })?;
                *s
            }};
        }
        let api = Api {
            init: sym!("dcgmInit"),
            connect_v2: sym!("dcgmConnect_v2"),
            disconnect: sym!("dcgmDisconnect"),
            start_embedded: sym!("dcgmStartEmbedded"),
            stop_embedded: sym!("dcgmStopEmbedded"),
            get_all_supported_devices: sym!("dcgmGetAllSupportedDevices"),
            get_gpu_instance_hierarchy: sym!("dcgmGetGpuInstanceHierarchy"),
            group_create: sym!("dcgmGroupCreate"),
            group_destroy: sym!("dcgmGroupDestroy"),
            group_add_entity: sym!("dcgmGroupAddEntity"),
            field_group_create: sym!("dcgmFieldGroupCreate"),
            watch_fields: sym!("dcgmWatchFields"),
            unwatch_fields: sym!("dcgmUnwatchFields"),
            entities_get_latest_values: sym!("dcgmEntitiesGetLatestValues"),
        };
        Ok(Box::leak(Box::new(api)))
    }
}
