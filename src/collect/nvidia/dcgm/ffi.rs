//! DCGM's C layouts, as much of them as the agent uses: types and constants declared by hand
//! from NVIDIA's public headers (github.com/NVIDIA/DCGM, `dcgmlib/dcgm_structs.h`,
//! `dcgm_fields.h`, Apache-2.0; no maintained Rust binding exists). The functions are in
//! `library.rs`. This file needs nothing but `std`: the mock DCGM
//! (`vendor-mocks/dcgm-mock`) compiles the same file, so the mock and the agent cannot
//! disagree about a layout.
//!
//! Every struct's size is checked at compile time against the size its header gives, computed
//! by hand from the C layout rules (each field at the next multiple of its alignment, the whole
//! rounded up to its largest alignment); the sum is written beside each check. The versioned
//! structs carry `MAKE_DCGM_VERSION(type, ver)` = `sizeof(type) | ver << 24`
//! (`dcgm_structs.h`), so a wrong size would also be refused by the library with
//! `DCGM_ST_VER_MISMATCH`, never read past.

use std::ffi::{c_char, c_int, c_uint, CStr};

/// `dcgmReturn_t` (`dcgm_structs.h`): a C enum, `int`-sized; 0 is success, errors negative.
pub type DcgmReturn = c_int;
/// `dcgmHandle_t`, `dcgmGpuGrp_t`, `dcgmFieldGrp_t` (`dcgm_structs.h`): `uintptr_t`.
pub type Handle = usize;
pub type GroupId = usize;
pub type FieldGroupId = usize;

/// `DCGM_ST_OK` (`dcgm_structs.h`, `dcgmReturn_enum`). The other statuses are named in
/// `status.rs`.
pub const ST_OK: DcgmReturn = 0;
/// `DCGM_ST_BADPARAM`.
pub const ST_BADPARAM: DcgmReturn = -1;
/// `DCGM_ST_NOT_SUPPORTED`.
pub const ST_NOT_SUPPORTED: DcgmReturn = -6;
/// `DCGM_ST_NO_DATA`: a watched field has no sample yet.
pub const ST_NO_DATA: DcgmReturn = -14;
/// `DCGM_ST_NOT_WATCHED`: the field is not watched (any more) on that entity.
pub const ST_NOT_WATCHED: DcgmReturn = -16;
/// `DCGM_ST_CONNECTION_NOT_VALID`: the host engine is gone; the handle is dead.
pub const ST_CONNECTION_NOT_VALID: DcgmReturn = -21;
/// `DCGM_ST_GPU_NOT_SUPPORTED`.
pub const ST_GPU_NOT_SUPPORTED: DcgmReturn = -22;
/// `DCGM_ST_FUNCTION_NOT_FOUND`, `DCGM_ST_LIBRARY_NOT_FOUND`: also what the agent counts when
/// the library or one of its functions cannot be loaded.
pub const ST_FUNCTION_NOT_FOUND: DcgmReturn = -20;
pub const ST_LIBRARY_NOT_FOUND: DcgmReturn = -25;
/// `DCGM_ST_PROFILING_NOT_SUPPORTED`: the GPU (or one in the group) has no profiling counters.
pub const ST_PROFILING_NOT_SUPPORTED: DcgmReturn = -36;

/// `DCGM_OPERATION_MODE_AUTO` (`dcgmOperationMode_enum`): the embedded engine samples on its
/// own threads.
pub const OPERATION_MODE_AUTO: c_int = 1;
/// `DCGM_GROUP_EMPTY` (`dcgmGroupType_enum`).
pub const GROUP_EMPTY: c_int = 1;
/// `DCGM_FV_FLAG_LIVE_DATA`: read the driver now rather than the cache (for the UUIDs, which
/// are never watched).
pub const FV_FLAG_LIVE_DATA: c_uint = 1;

/// `dcgm_field_entity_group_t` (`dcgm_fields.h`): `DCGM_FE_GPU` = 1, `DCGM_FE_GPU_I` = 4 (a
/// MIG GPU instance), `DCGM_FE_GPU_CI` = 5 (a compute instance).
pub const FE_GPU: c_uint = 1;
pub const FE_GPU_I: c_uint = 4;

/// `DCGM_FT_DOUBLE` and `DCGM_FT_STRING` (`dcgm_fields.h`): a value's type, one character.
pub const FT_DOUBLE: u16 = b'd' as u16;
pub const FT_STRING: u16 = b's' as u16;

/// `DCGM_FI_DEV_UUID` (`dcgm_fields.h`): the GPU's (or MIG instance's) UUID, a string.
pub const FI_DEV_UUID: u16 = 54;
/// The profiling fields (`dcgm_fields.h`), all doubles in 0..1: `DCGM_FI_PROF_GR_ENGINE_ACTIVE`
/// 1001, `_SM_ACTIVE` 1002, `_SM_OCCUPANCY` 1003, `_PIPE_TENSOR_ACTIVE` 1004, `_DRAM_ACTIVE`
/// 1005, `_PIPE_FP64_ACTIVE` 1006, `_PIPE_FP32_ACTIVE` 1007, `_PIPE_FP16_ACTIVE` 1008.
pub const FI_PROF_GR_ENGINE_ACTIVE: u16 = 1001;
pub const FI_PROF_SM_ACTIVE: u16 = 1002;
pub const FI_PROF_SM_OCCUPANCY: u16 = 1003;
pub const FI_PROF_PIPE_TENSOR_ACTIVE: u16 = 1004;
pub const FI_PROF_DRAM_ACTIVE: u16 = 1005;
pub const FI_PROF_PIPE_FP64_ACTIVE: u16 = 1006;
pub const FI_PROF_PIPE_FP32_ACTIVE: u16 = 1007;
pub const FI_PROF_PIPE_FP16_ACTIVE: u16 = 1008;

/// `DCGM_FP64_BLANK` (`dcgm_structs.h`): 2^47. `DCGM_FP64_IS_BLANK(v)` is `v >= DCGM_FP64_BLANK`;
/// `_NOT_FOUND`, `_NOT_SUPPORTED`, `_NOT_PERMISSIONED` are the blank plus 1, 2, 3.
pub const FP64_BLANK: f64 = 140_737_488_355_328.0;

/// `DCGM_MAX_NUM_DEVICES` (`dcgm_structs.h`): the size of `dcgmGetAllSupportedDevices`' list.
pub const MAX_NUM_DEVICES: usize = 32;
/// `DCGM_MAX_STR_LENGTH`, `DCGM_MAX_BLOB_LENGTH` (`dcgm_structs.h`).
pub const MAX_STR_LENGTH: usize = 256;
pub const MAX_BLOB_LENGTH: usize = 4096;
/// `DCGM_MAX_HIERARCHY_INFO` = `DCGM_MAX_NUM_DEVICES * DCGM_MAX_TOTAL_INSTANCES_PER_GPU`
/// (32 x 14, `dcgm_structs.h`).
pub const MAX_HIERARCHY_INFO: usize = MAX_NUM_DEVICES * 14;

/// `MAKE_DCGM_VERSION(typeName, ver)` (`dcgm_structs.h`).
const fn make_version(size: usize, ver: u32) -> c_uint {
    (size as c_uint) | (ver << 24)
}

/// `dcgmConnectV2Params_v2` (`dcgm_structs.h`): four `unsigned int`s, 4 x 4 = 16 bytes.
#[repr(C)]
#[derive(Debug, Default)]
pub struct ConnectV2Params {
    pub version: c_uint,
    /// 0: the host engine drops this connection's groups and watches when it goes away.
    pub persist_after_disconnect: c_uint,
    pub timeout_ms: c_uint,
    pub address_is_unix_socket: c_uint,
}
const _: () = assert!(size_of::<ConnectV2Params>() == 16);
/// `dcgmConnectV2Params_version2`.
pub const CONNECT_V2_PARAMS_VERSION: c_uint = make_version(size_of::<ConnectV2Params>(), 2);

/// `dcgmGroupEntityPair_t` (`dcgm_structs.h`): the entity group (a C enum, 4 bytes) and
/// `dcgm_field_eid_t` (`unsigned int`), 4 + 4 = 8 bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityPair {
    pub entity_group_id: c_uint,
    pub entity_id: c_uint,
}
const _: () = assert!(size_of::<EntityPair>() == 8);

/// The value union of `dcgmFieldValue_v2`: `int64_t`, `double`, `char[256]`, `char[4096]`;
/// 4096 bytes, aligned to 8.
#[repr(C)]
#[derive(Clone, Copy)]
pub union FieldValueUnion {
    pub i64: i64,
    pub dbl: f64,
    pub str: [c_char; MAX_STR_LENGTH],
    pub blob: [c_char; MAX_BLOB_LENGTH],
}
const _: () = assert!(size_of::<FieldValueUnion>() == 4096);

/// `dcgmFieldValue_v2` (`dcgm_structs.h`): version 4 @0, entityGroupId 4 @4, entityId 4 @8,
/// fieldId 2 @12, fieldType 2 @14, status 4 @16, unused 4 @20 ("to align ts to an 8-byte
/// boundary"), ts 8 @24, value 4096 @32: 4128 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FieldValueV2 {
    pub version: c_uint,
    pub entity_group_id: c_uint,
    pub entity_id: c_uint,
    pub field_id: u16,
    pub field_type: u16,
    pub status: c_int,
    pub unused: c_uint,
    /// Microseconds since 1970.
    pub ts: i64,
    pub value: FieldValueUnion,
}
const _: () = assert!(size_of::<FieldValueV2>() == 4128);
/// `dcgmFieldValue_version2`.
pub const FIELD_VALUE_V2_VERSION: c_uint = make_version(size_of::<FieldValueV2>(), 2);

impl std::fmt::Debug for FieldValueV2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldValueV2")
            .field("entity", &(self.entity_group_id, self.entity_id))
            .field("field_id", &self.field_id)
            .field("status", &self.status)
            .field("ts", &self.ts)
            .field("double", &self.double())
            .field("string", &self.string())
            .finish()
    }
}

impl FieldValueV2 {
    /// A zeroed record with its version set, for the library to fill.
    pub fn empty() -> FieldValueV2 {
        FieldValueV2 {
            version: FIELD_VALUE_V2_VERSION,
            entity_group_id: 0,
            entity_id: 0,
            field_id: 0,
            field_type: 0,
            status: 0,
            unused: 0,
            ts: 0,
            value: FieldValueUnion {
                blob: [0; MAX_BLOB_LENGTH],
            },
        }
    }

    /// The value as a string, if it is one (up to its NUL, within the field's 256 bytes).
    pub fn string(&self) -> Option<String> {
        if self.field_type != FT_STRING {
            return None;
        }
        // SAFETY: a string value is the `str` member; all of the union's bytes are initialized
        // (the record was zeroed before the call), so any member may be read.
        let bytes = unsafe { self.value.str }.map(|c| c as u8);
        let end = bytes.iter().position(|b| *b == 0)?;
        CStr::from_bytes_with_nul(&bytes[..=end])
            .ok()
            .map(|s| s.to_string_lossy().into_owned())
    }

    /// The value as a double, if it is one.
    pub fn double(&self) -> Option<f64> {
        // SAFETY: as for `string`: every byte is initialized, and `dbl` is plain data.
        (self.field_type == FT_DOUBLE).then_some(unsafe { self.value.dbl })
    }
}

/// `dcgmMigEntityInfo_t` (`dcgm_structs.h`): `char gpuUuid[128]` and five `unsigned int`s,
/// 128 + 5 x 4 = 148 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MigEntityInfo {
    pub gpu_uuid: [c_char; 128],
    pub nvml_gpu_index: c_uint,
    /// The NVML GPU instance id (for a GPU instance or a compute instance).
    pub nvml_instance_id: c_uint,
    pub nvml_compute_instance_id: c_uint,
    pub nvml_mig_profile_id: c_uint,
    pub nvml_profile_slices: c_uint,
}
const _: () = assert!(size_of::<MigEntityInfo>() == 148);

/// `dcgmMigHierarchyInfo_v2` (`dcgm_structs.h`): entity 8, parent 8, info 148 = 164 bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MigHierarchyInfoV2 {
    pub entity: EntityPair,
    pub parent: EntityPair,
    pub info: MigEntityInfo,
}
const _: () = assert!(size_of::<MigHierarchyInfoV2>() == 164);

/// `dcgmMigHierarchy_v2` (`dcgm_structs.h`): version 4, count 4, 448 entries of 164 bytes:
/// 8 + 73,472 = 73,480 bytes.
#[repr(C)]
pub struct MigHierarchyV2 {
    pub version: c_uint,
    pub count: c_uint,
    pub entity_list: [MigHierarchyInfoV2; MAX_HIERARCHY_INFO],
}
const _: () = assert!(size_of::<MigHierarchyV2>() == 73_480);
/// `dcgmMigHierarchy_version2`.
pub const MIG_HIERARCHY_V2_VERSION: c_uint = make_version(size_of::<MigHierarchyV2>(), 2);

impl MigHierarchyV2 {
    /// A zeroed hierarchy on the heap (73 KB) with its version set.
    pub fn boxed() -> Box<MigHierarchyV2> {
        let info = MigHierarchyInfoV2 {
            entity: EntityPair::default(),
            parent: EntityPair::default(),
            info: MigEntityInfo {
                gpu_uuid: [0; 128],
                nvml_gpu_index: 0,
                nvml_instance_id: 0,
                nvml_compute_instance_id: 0,
                nvml_mig_profile_id: 0,
                nvml_profile_slices: 0,
            },
        };
        Box::new(MigHierarchyV2 {
            version: MIG_HIERARCHY_V2_VERSION,
            count: 0,
            entity_list: [info; MAX_HIERARCHY_INFO],
        })
    }
}

/// A C string from a fixed buffer, up to its NUL (or its end).
pub fn c_buffer_string(buffer: &[c_char]) -> String {
    let bytes: Vec<u8> = buffer
        .iter()
        .map(|c| *c as u8)
        .take_while(|b| *b != 0)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_size_and_version_number() {
        assert_eq!(CONNECT_V2_PARAMS_VERSION, 16 | (2 << 24));
        assert_eq!(FIELD_VALUE_V2_VERSION, 4128 | (2 << 24));
        assert_eq!(MIG_HIERARCHY_V2_VERSION, 73_480 | (2 << 24));
    }

    #[test]
    fn field_value_offsets_match_the_header() {
        let v = FieldValueV2::empty();
        let base = std::ptr::addr_of!(v) as usize;
        let at = |p: *const u8| p as usize - base;
        assert_eq!(at(std::ptr::addr_of!(v.field_id).cast()), 12);
        assert_eq!(at(std::ptr::addr_of!(v.status).cast()), 16);
        assert_eq!(at(std::ptr::addr_of!(v.ts).cast()), 24);
        assert_eq!(at(std::ptr::addr_of!(v.value).cast()), 32);
    }

    #[test]
    fn strings_and_doubles_by_their_type() {
        let mut v = FieldValueV2::empty();
        v.field_type = FT_STRING;
        let text = b"GPU-1234\0";
        // SAFETY: writing bytes into the zeroed union's string member.
        unsafe {
            for (i, b) in text.iter().enumerate() {
                v.value.str[i] = *b as c_char;
            }
        }
        assert_eq!(v.string().as_deref(), Some("GPU-1234"));
        assert_eq!(v.double(), None);
        v.field_type = FT_DOUBLE;
        v.value.dbl = 0.25;
        assert_eq!(v.double(), Some(0.25));
        assert_eq!(v.string(), None);
        assert_eq!(c_buffer_string(&[b'a' as c_char, 0, b'b' as c_char]), "a");
    }
}
