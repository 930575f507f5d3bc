//! NVLink counters through `nvmlDeviceGetFieldValues`: KiB per link and for all links
//! (`scopeId = UINT_MAX`), the link count, and per-field errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::mem::zeroed;

use common::{device, scenario, Mock};
use nvml_wrapper::enums::device::SampleValue;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::structs::device::FieldId;
use nvml_wrapper_sys::bindings::field_id::*;
use nvml_wrapper_sys::bindings::*;

const TX: u32 = NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX;
const RX: u32 = NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX;
const LINKS: u32 = NVML_FI_DEV_NVLINK_LINK_COUNT;
const ALL: u32 = u32::MAX;

/// 5 GiB sent and 4 GiB received over 18 links; a 4-link device whose totals are not whole
/// KiB nor divisible by the links; a device without NVLink.
fn node() -> String {
    scenario(&[
        device(
            "GPU-nvl",
            1,
            "    nvlink: {tx_bytes: 5368709120, rx_bytes: 4294967296}\n",
        ),
        device(
            "GPU-odd",
            2,
            "    nvlink: {tx_bytes: 10241, rx_bytes: 0, links: 4}\n",
        ),
        device("GPU-pcie", 3, ""),
    ])
}

fn request(field: u32, scope: u32) -> nvmlFieldValue_t {
    let mut v: nvmlFieldValue_t = unsafe { zeroed() };
    v.fieldId = field;
    v.scopeId = scope;
    v.nvmlReturn = 999;
    v
}

/// Asks for `fields` on device `index` through the raw call; returns the call's code and
/// each field's (code, value as u64).
fn get(
    mock_nvml: &nvml_wrapper::Nvml,
    index: u32,
    fields: &[(u32, u32)],
) -> (u32, Vec<(u32, u64)>) {
    let d = mock_nvml.device_by_index(index).unwrap();
    let mut values: Vec<_> = fields.iter().map(|(f, s)| request(*f, *s)).collect();
    let rc = unsafe {
        mock_nvml.lib().nvmlDeviceGetFieldValues(
            d.handle(),
            values.len() as i32,
            values.as_mut_ptr(),
        )
    };
    let answers = values
        .iter()
        .map(|v| {
            let value = unsafe {
                if v.valueType == nvmlValueType_enum_NVML_VALUE_TYPE_UNSIGNED_INT {
                    u64::from(v.value.uiVal)
                } else {
                    v.value.ullVal
                }
            };
            (v.nvmlReturn, value)
        })
        .collect();
    (rc, answers)
}

#[test]
fn all_links_are_the_totals_in_kib() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let (rc, got) = get(&nvml, 0, &[(TX, ALL), (RX, ALL), (LINKS, 0)]);
    assert_eq!(rc, 0);
    assert_eq!(
        got,
        [(0, 5368709120 / 1024), (0, 4294967296 / 1024), (0, 18)]
    );
    // The exporter gets bytes back by multiplying by 1024.
    assert_eq!(got[0].1 * 1024, 5368709120);
}

#[test]
fn per_link_values_add_up_to_all_links() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    for (index, links) in [(0, 18), (1, 4)] {
        let fields: Vec<_> = (0..links).map(|l| (TX, l)).collect();
        let (rc, got) = get(&nvml, index, &fields);
        assert_eq!(rc, 0);
        assert!(got.iter().all(|(code, _)| *code == 0), "{got:?}");
        let sum: u64 = got.iter().map(|(_, v)| v).sum();
        let (_, all) = get(&nvml, index, &[(TX, ALL)]);
        assert_eq!(sum, all[0].1, "device {index}");
    }
    // 10241 bytes are 10 whole KiB: links 0 and 1 carry 3, links 2 and 3 carry 2.
    let (_, got) = get(&nvml, 1, &[(TX, 0), (TX, 1), (TX, 2), (TX, 3), (TX, ALL)]);
    let values: Vec<u64> = got.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, [3, 3, 2, 2, 10]);
}

#[test]
fn per_field_errors() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    let invalid = nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT;
    let unsupported = nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED;

    // A link past the count, a field the mock does not model, next to a good one.
    let (rc, got) = get(
        &nvml,
        1,
        &[(TX, 4), (NVML_FI_DEV_ECC_SBE_VOL_TOTAL, 0), (RX, ALL)],
    );
    assert_eq!(rc, 0);
    assert_eq!(got[0].0, invalid);
    assert_eq!(got[1].0, unsupported);
    assert_eq!(got[2], (0, 0));

    // No NVLink: every NVLink field is NOT_SUPPORTED, the call itself succeeds.
    let (rc, got) = get(&nvml, 2, &[(TX, ALL), (RX, 0), (LINKS, 0)]);
    assert_eq!(rc, 0);
    assert!(got.iter().all(|(code, _)| *code == unsupported), "{got:?}");
}

#[test]
fn through_nvml_wrapper() {
    let mock = Mock::new(&node());
    let nvml = mock.init().unwrap();
    // nvml-wrapper leaves scopeId at 0: link 0's share.
    let d = nvml.device_by_index(1).unwrap();
    let got = d
        .field_values_for(&[FieldId(TX), FieldId(LINKS), FieldId(9999)])
        .unwrap();
    let tx = got[0].as_ref().unwrap();
    assert_eq!(tx.field, FieldId(TX));
    assert!(matches!(tx.value, Ok(SampleValue::U64(3))), "{tx:?}");
    assert!(tx.timestamp > 0);
    let links = got[1].as_ref().unwrap();
    assert!(matches!(links.value, Ok(SampleValue::U32(4))), "{links:?}");
    assert!(matches!(
        got[2].as_ref().unwrap().value,
        Err(NvmlError::NotSupported)
    ));

    let pcie = nvml.device_by_index(2).unwrap();
    let got = pcie.field_values_for(&[FieldId(TX)]).unwrap();
    assert!(matches!(
        got[0].as_ref().unwrap().value,
        Err(NvmlError::NotSupported)
    ));
}

#[test]
fn call_level_errors() {
    let mock = Mock::new(&scenario(&[device(
        "GPU-nvl",
        1,
        "    nvlink: {tx_bytes: 1024, rx_bytes: 1024}\n    errors: {nvlink: GPU_IS_LOST}\n",
    )]));
    let nvml = mock.init().unwrap();
    let d = nvml.device_by_index(0).unwrap();
    assert!(matches!(
        d.field_values_for(&[FieldId(TX)]),
        Err(NvmlError::GpuLost)
    ));
    unsafe {
        let mut v = request(TX, ALL);
        let lib = nvml.lib();
        mock.replace(&scenario(&[device(
            "GPU-nvl",
            1,
            "    nvlink: {tx_bytes: 1024, rx_bytes: 1024}\n",
        )]));
        assert_eq!(lib.nvmlDeviceGetFieldValues(d.handle(), 1, &mut v), 0);
        assert_eq!(v.value.ullVal, 1);
        let invalid = nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT;
        assert_eq!(lib.nvmlDeviceGetFieldValues(d.handle(), 0, &mut v), invalid);
        assert_eq!(
            lib.nvmlDeviceGetFieldValues(d.handle(), -1, &mut v),
            invalid
        );
        assert_eq!(
            lib.nvmlDeviceGetFieldValues(d.handle(), 1, std::ptr::null_mut()),
            invalid
        );
    }
}
