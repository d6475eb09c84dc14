//! A stand-in `libnvidia-ml.so.1`: the NVML C ABI over simulated GPUs.
//!
//! gantry loads it through nvml-wrapper exactly as it loads the real driver, so tests and
//! simulation mode exercise the real NVML code path, and third-party NVML clients (gpustat,
//! nvitop, anything on nvidia-ml-py) run against it unchanged. Simulated GPU memory is held by
//! live processes whose environment says so (see `procs`), so a job gantry launches uses
//! simulated memory exactly as it would use real memory.
//!
//! Every exported function checks its pointers and returns an NVML status; none panics across the
//! C boundary.

// The exported functions are called from C with the pointers NVML's ABI defines; each checks
// them for null before use, and marking them `unsafe` would change nothing for a C caller.
#![allow(clippy::not_unsafe_ptr_arg_deref)]
// The exported names and struct fields are NVML's.
#![allow(non_snake_case, non_camel_case_types)]

mod config;
mod procs;

use config::{SimConfig, SimGpu};
use procs::SimProcess;
use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CStr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

pub const NVML_SUCCESS: u32 = 0;
pub const NVML_ERROR_UNINITIALIZED: u32 = 1;
pub const NVML_ERROR_INVALID_ARGUMENT: u32 = 2;
pub const NVML_ERROR_NOT_SUPPORTED: u32 = 3;
pub const NVML_ERROR_NO_PERMISSION: u32 = 4;
pub const NVML_ERROR_NOT_FOUND: u32 = 6;
pub const NVML_ERROR_INSUFFICIENT_SIZE: u32 = 7;
pub const NVML_ERROR_DRIVER_NOT_LOADED: u32 = 9;
pub const NVML_ERROR_TIMEOUT: u32 = 10;
pub const NVML_ERROR_GPU_IS_LOST: u32 = 15;
pub const NVML_ERROR_LIB_RM_VERSION_MISMATCH: u32 = 18;
pub const NVML_ERROR_ARGUMENT_VERSION_MISMATCH: u32 = 25;
pub const NVML_ERROR_UNKNOWN: u32 = 999;

type nvmlReturn_t = c_uint;
type nvmlDevice_t = *mut c_void;

/// `nvmlMemory_v2_t`'s version: its size (40) and version 2 in the high byte.
const NVML_MEMORY_V2: c_uint = 0x0200_0028;
/// NVML reports an instance id of all ones for a GPU not in MIG mode.
const NO_INSTANCE: c_uint = 0xFFFF_FFFF;
/// A process list is cached this long: clients ask for memory, utilisation and processes of
/// every GPU in one sweep, and one `/proc` scan serves them all.
const PROCESS_CACHE: Duration = Duration::from_millis(20);

#[repr(C)]
pub struct nvmlMemory_t {
    total: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

#[repr(C)]
pub struct nvmlMemory_v2_t {
    version: c_uint,
    total: c_ulonglong,
    reserved: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

#[repr(C)]
pub struct nvmlUtilization_t {
    gpu: c_uint,
    memory: c_uint,
}

#[repr(C)]
pub struct nvmlProcessInfo_t {
    pid: c_uint,
    usedGpuMemory: c_ulonglong,
    gpuInstanceId: c_uint,
    computeInstanceId: c_uint,
}

#[repr(C)]
pub struct nvmlPciInfo_t {
    busIdLegacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pciDeviceId: c_uint,
    pciSubSystemId: c_uint,
    busId: [c_char; 32],
}

/// Identifies one version of the configuration file. The inode catches a file renamed over the
/// old one within the same coarse mtime tick.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp { modified: m.modified().ok(), len: m.len(), inode: m.ino() })
}

struct State {
    path: Option<PathBuf>,
    stamp: Option<Stamp>,
    config: SimConfig,
    gpus: Vec<SimGpu>,
    processes: Option<(Instant, Vec<SimProcess>)>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
static INITIALIZED: AtomicU32 = AtomicU32::new(0);

fn config_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GANTRY_SIM_CONFIG") {
        return Some(PathBuf::from(path));
    }
    // Beside this library: gantry's simulation mode writes both into one directory.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the address of a function of this library and fills `info`.
    let found = unsafe { libc::dladdr(config_path as *const c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dladdr returned a NUL-terminated path that lives as long as the mapping.
    let lib = PathBuf::from(unsafe { CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned());
    lib.parent().map(|dir| dir.join("nvml-sim.json")).filter(|p| p.exists())
}

fn read_config(path: &Option<PathBuf>) -> (SimConfig, Option<Stamp>) {
    let Some(path) = path else { return (SimConfig::default(), None) };
    let stamp = stamp(path);
    let config = std::fs::read_to_string(path).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default();
    (config, stamp)
}

/// Runs `f` on the current state, re-reading the configuration if its file changed.
fn with_state<R>(f: impl FnOnce(&mut State) -> R) -> R {
    let mut guard = STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let state = guard.get_or_insert_with(|| {
        let path = config_path();
        let (config, stamp) = read_config(&path);
        State { gpus: config.gpus(), path, stamp, config, processes: None }
    });
    if let Some(path) = &state.path
        && stamp(path) != state.stamp
    {
        let (config, stamp) = read_config(&state.path);
        state.gpus = config.gpus();
        state.config = config;
        state.stamp = stamp;
    }
    f(state)
}

impl State {
    fn processes(&mut self) -> &[SimProcess] {
        let fresh = self.processes.as_ref().is_some_and(|(at, _)| at.elapsed() < PROCESS_CACHE);
        if !fresh {
            let uuids: Vec<String> = self.gpus.iter().map(|g| g.uuid.clone()).collect();
            let machine = self.path.as_ref().and_then(|p| std::fs::canonicalize(p).ok()).map(|p| p.to_string_lossy().into_owned());
            self.processes = Some((Instant::now(), procs::scan(&uuids, machine.as_deref())));
        }
        self.processes.as_ref().map(|(_, p)| p.as_slice()).unwrap_or(&[])
    }
}

/// What one GPU shows now, given the processes on it.
struct Reading {
    used_mib: u64,
    utilization: u32,
    processes: Vec<SimProcess>,
}

fn reading(state: &mut State, index: u32) -> Reading {
    let processes: Vec<SimProcess> = state.processes().iter().filter(|p| p.gpu == index).cloned().collect();
    let gpu = &state.gpus[index as usize];
    let used = gpu.base_used_mib + processes.iter().map(|p| p.memory_mib).sum::<u64>();
    let utilization = (gpu.base_utilization + processes.iter().map(|p| p.utilization).sum::<u32>()).min(100);
    Reading { used_mib: used.min(gpu.memory_mib - gpu.reserved_mib), utilization, processes }
}

fn log_call(name: &str) {
    let path = with_state(|s| s.config.call_log.clone());
    if let Some(path) = path {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{name}");
        }
    }
}

/// The common path of every per-device call: initialised, a valid handle, no injected error.
fn device<R>(name: &str, handle: nvmlDevice_t, f: impl FnOnce(&mut State, u32) -> Result<R, u32>) -> Result<R, u32> {
    if INITIALIZED.load(Ordering::SeqCst) == 0 {
        return Err(NVML_ERROR_UNINITIALIZED);
    }
    let index = (handle as usize).checked_sub(1).ok_or(NVML_ERROR_INVALID_ARGUMENT)?;
    with_state(|state| {
        let gpu = state.gpus.get(index).ok_or(NVML_ERROR_INVALID_ARGUMENT)?;
        if let Some(error) = gpu.error {
            return Err(error.code());
        }
        if gpu.not_supported.iter().any(|f| f == name) {
            return Err(NVML_ERROR_NOT_SUPPORTED);
        }
        f(state, index as u32)
    })
}

fn status(r: Result<(), u32>) -> nvmlReturn_t {
    match r {
        Ok(()) => NVML_SUCCESS,
        Err(code) => code,
    }
}

/// Writes through an out-pointer the caller handed us.
fn put<T>(out: *mut T, value: T) -> Result<(), u32> {
    if out.is_null() {
        return Err(NVML_ERROR_INVALID_ARGUMENT);
    }
    // SAFETY: non-null, and NVML's contract is that it points to a T the caller owns.
    unsafe { out.write(value) };
    Ok(())
}

fn put_str(buf: *mut c_char, len: c_uint, value: &str) -> Result<(), u32> {
    if buf.is_null() {
        return Err(NVML_ERROR_INVALID_ARGUMENT);
    }
    let bytes = value.as_bytes();
    if bytes.len() + 1 > len as usize {
        return Err(NVML_ERROR_INSUFFICIENT_SIZE);
    }
    // SAFETY: the caller gave `len` writable bytes and we write bytes.len() + 1 <= len of them.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buf, bytes.len());
        buf.add(bytes.len()).write(0);
    }
    Ok(())
}

fn fill(dst: &mut [c_char], value: &str) {
    let room = dst.len().saturating_sub(1);
    for (d, s) in dst.iter_mut().zip(value.bytes().take(room)) {
        *d = s as c_char;
    }
}

fn init() -> nvmlReturn_t {
    log_call("nvmlInit");
    if let Some(error) = with_state(|s| s.config.init_error) {
        return error.code();
    }
    INITIALIZED.fetch_add(1, Ordering::SeqCst);
    NVML_SUCCESS
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> nvmlReturn_t {
    init()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit() -> nvmlReturn_t {
    init()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> nvmlReturn_t {
    init()
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> nvmlReturn_t {
    log_call("nvmlShutdown");
    let decremented = INITIALIZED.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    match decremented {
        Ok(_) => NVML_SUCCESS,
        Err(_) => NVML_ERROR_UNINITIALIZED,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(result: nvmlReturn_t) -> *const c_char {
    let text: &'static CStr = match result {
        NVML_SUCCESS => c"Success",
        NVML_ERROR_UNINITIALIZED => c"Uninitialized",
        NVML_ERROR_INVALID_ARGUMENT => c"Invalid Argument",
        NVML_ERROR_NOT_SUPPORTED => c"Not Supported",
        NVML_ERROR_NO_PERMISSION => c"Insufficient Permissions",
        NVML_ERROR_NOT_FOUND => c"Not Found",
        NVML_ERROR_INSUFFICIENT_SIZE => c"Insufficient Size",
        NVML_ERROR_DRIVER_NOT_LOADED => c"Driver Not Loaded",
        NVML_ERROR_TIMEOUT => c"Timeout",
        NVML_ERROR_GPU_IS_LOST => c"GPU is lost",
        NVML_ERROR_LIB_RM_VERSION_MISMATCH => c"RM has detected an NVML/RM version mismatch.",
        NVML_ERROR_ARGUMENT_VERSION_MISMATCH => c"Argument version mismatch",
        _ => c"Unknown Error",
    };
    text.as_ptr()
}

fn system<R>(f: impl FnOnce(&mut State) -> Result<R, u32>) -> Result<R, u32> {
    if INITIALIZED.load(Ordering::SeqCst) == 0 {
        return Err(NVML_ERROR_UNINITIALIZED);
    }
    with_state(f)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlSystemGetDriverVersion(version: *mut c_char, length: c_uint) -> nvmlReturn_t {
    status(system(|s| put_str(version, length, &s.config.driver_version)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlSystemGetNVMLVersion(version: *mut c_char, length: c_uint) -> nvmlReturn_t {
    status(system(|s| put_str(version, length, &s.config.nvml_version)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlSystemGetCudaDriverVersion(version: *mut c_int) -> nvmlReturn_t {
    status(system(|s| put(version, s.config.cuda_driver_version)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlSystemGetCudaDriverVersion_v2(version: *mut c_int) -> nvmlReturn_t {
    nvmlSystemGetCudaDriverVersion(version)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> nvmlReturn_t {
    status(system(|s| put(count, s.gpus.len() as c_uint)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetCount(count: *mut c_uint) -> nvmlReturn_t {
    nvmlDeviceGetCount_v2(count)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetHandleByIndex_v2(index: c_uint, device: *mut nvmlDevice_t) -> nvmlReturn_t {
    status(system(|s| {
        let gpu = s.gpus.get(index as usize).ok_or(NVML_ERROR_INVALID_ARGUMENT)?;
        if gpu.error == Some(config::SimError::GpuLost) {
            return Err(NVML_ERROR_GPU_IS_LOST);
        }
        put(device, (index as usize + 1) as nvmlDevice_t)
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetHandleByIndex(index: c_uint, device: *mut nvmlDevice_t) -> nvmlReturn_t {
    nvmlDeviceGetHandleByIndex_v2(index, device)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetHandleByUUID(uuid: *const c_char, device: *mut nvmlDevice_t) -> nvmlReturn_t {
    if uuid.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: NVML's contract: a NUL-terminated string.
    let wanted = unsafe { CStr::from_ptr(uuid) }.to_string_lossy().into_owned();
    status(system(|s| {
        let index = s.gpus.iter().position(|g| g.uuid == wanted).ok_or(NVML_ERROR_NOT_FOUND)?;
        put(device, (index + 1) as nvmlDevice_t)
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetIndex(device: nvmlDevice_t, index: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetIndex", device, |_, i| put(index, i)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetMinorNumber(device: nvmlDevice_t, minor: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetMinorNumber", device, |_, i| put(minor, i)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetName(device: nvmlDevice_t, name: *mut c_char, length: c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetName", device, |s, i| put_str(name, length, &s.gpus[i as usize].name)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetUUID(device: nvmlDevice_t, uuid: *mut c_char, length: c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetUUID", device, |s, i| put_str(uuid, length, &s.gpus[i as usize].uuid)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetPciInfo_v3(device: nvmlDevice_t, pci: *mut nvmlPciInfo_t) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetPciInfo_v3", device, |_, i| {
        let bus = 0x17 + i;
        let mut info = nvmlPciInfo_t {
            busIdLegacy: [0; 16],
            domain: 0,
            bus,
            device: 0,
            pciDeviceId: 0x2684_10de,
            pciSubSystemId: 0x1675_10de,
            busId: [0; 32],
        };
        fill(&mut info.busIdLegacy, &format!("0000:{bus:02X}:00.0"));
        fill(&mut info.busId, &format!("00000000:{bus:02X}:00.0"));
        put(pci, info)
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetPciInfo_v2(device: nvmlDevice_t, pci: *mut nvmlPciInfo_t) -> nvmlReturn_t {
    nvmlDeviceGetPciInfo_v3(device, pci)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetPciInfo(device: nvmlDevice_t, pci: *mut nvmlPciInfo_t) -> nvmlReturn_t {
    nvmlDeviceGetPciInfo_v3(device, pci)
}

const MIB: u64 = 1 << 20;

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetMemoryInfo(device: nvmlDevice_t, memory: *mut nvmlMemory_t) -> nvmlReturn_t {
    // v1: the driver's reservation is part of `used`.
    status(self::device("nvmlDeviceGetMemoryInfo", device, |s, i| {
        let r = reading(s, i);
        let total = s.gpus[i as usize].memory_mib * MIB;
        let used = (r.used_mib + s.gpus[i as usize].reserved_mib) * MIB;
        put(memory, nvmlMemory_t { total, free: total - used, used })
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetMemoryInfo_v2(device: nvmlDevice_t, memory: *mut nvmlMemory_v2_t) -> nvmlReturn_t {
    if memory.is_null() {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    // SAFETY: non-null; the caller sets `version` before the call, as NVML requires.
    if unsafe { (*memory).version } != NVML_MEMORY_V2 {
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    }
    // v2: the driver's reservation on its own; `used` is what processes hold.
    status(self::device("nvmlDeviceGetMemoryInfo_v2", device, |s, i| {
        let r = reading(s, i);
        let total = s.gpus[i as usize].memory_mib * MIB;
        let reserved = s.gpus[i as usize].reserved_mib * MIB;
        let used = r.used_mib * MIB;
        put(memory, nvmlMemory_v2_t { version: NVML_MEMORY_V2, total, reserved, free: total - reserved - used, used })
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetUtilizationRates(device: nvmlDevice_t, utilization: *mut nvmlUtilization_t) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetUtilizationRates", device, |s, i| {
        let gpu = reading(s, i).utilization;
        put(utilization, nvmlUtilization_t { gpu, memory: gpu / 2 })
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetEncoderUtilization(device: nvmlDevice_t, utilization: *mut c_uint, period_us: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetEncoderUtilization", device, |_, _| {
        put(utilization, 0)?;
        put(period_us, 167_000)
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetDecoderUtilization(device: nvmlDevice_t, utilization: *mut c_uint, period_us: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetDecoderUtilization", device, |_, _| {
        put(utilization, 0)?;
        put(period_us, 167_000)
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetTemperature(device: nvmlDevice_t, sensor: c_uint, temp: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetTemperature", device, |s, i| {
        if sensor != 0 {
            return Err(NVML_ERROR_INVALID_ARGUMENT);
        }
        let util = reading(s, i).utilization;
        put(temp, s.gpus[i as usize].base_temperature_c + util * 2 / 5)
    }))
}

/// NVML's id of the memory (HBM) temperature field.
const NVML_FI_DEV_MEMORY_TEMP: c_uint = 82;
const NVML_VALUE_TYPE_UNSIGNED_INT: c_uint = 1;

#[repr(C)]
#[allow(non_snake_case)]
pub struct nvmlFieldValue_t {
    fieldId: c_uint,
    scopeId: c_uint,
    timestamp: i64,
    latencyUsec: i64,
    valueType: c_uint,
    nvmlReturn: nvmlReturn_t,
    value: u64,
}

/// Field values: the memory temperature, a little above the GPU's; every other field is not
/// supported, each answered in its own `nvmlReturn` as NVML does.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetFieldValues(device: nvmlDevice_t, count: c_int, values: *mut nvmlFieldValue_t) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetFieldValues", device, |s, i| {
        let Ok(count) = usize::try_from(count) else { return Err(NVML_ERROR_INVALID_ARGUMENT) };
        if values.is_null() {
            return Err(NVML_ERROR_INVALID_ARGUMENT);
        }
        let util = reading(s, i).utilization;
        let memory_temp = s.gpus[i as usize].base_temperature_c + 3 + util * 2 / 5;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        // SAFETY: NVML's contract: `values` points to `count` entries the caller owns, each with
        // its `fieldId` set.
        let fields = unsafe { std::slice::from_raw_parts_mut(values, count) };
        for field in fields {
            field.timestamp = now;
            field.latencyUsec = 0;
            if field.fieldId == NVML_FI_DEV_MEMORY_TEMP {
                field.valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
                field.value = u64::from(memory_temp);
                field.nvmlReturn = NVML_SUCCESS;
            } else {
                field.nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
            }
        }
        Ok(())
    }))
}

fn power_mw(s: &mut State, i: u32) -> c_uint {
    let util = reading(s, i).utilization;
    let gpu = &s.gpus[i as usize];
    let idle = gpu.idle_power_w.min(gpu.power_limit_w);
    (idle + (gpu.power_limit_w - idle) * util / 100) * 1000
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetPowerUsage(device: nvmlDevice_t, power: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetPowerUsage", device, |s, i| {
        let mw = power_mw(s, i);
        put(power, mw)
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetEnforcedPowerLimit(device: nvmlDevice_t, limit: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetEnforcedPowerLimit", device, |s, i| put(limit, s.gpus[i as usize].power_limit_w * 1000)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetPowerManagementLimit(device: nvmlDevice_t, limit: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetPowerManagementLimit", device, |s, i| put(limit, s.gpus[i as usize].power_limit_w * 1000)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetPowerManagementDefaultLimit(device: nvmlDevice_t, limit: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetPowerManagementDefaultLimit", device, |s, i| put(limit, s.gpus[i as usize].power_limit_w * 1000)))
}

fn fan_speed(name: &str, device: nvmlDevice_t, speed: *mut c_uint) -> nvmlReturn_t {
    status(self::device(name, device, |s, i| {
        let util = reading(s, i).utilization;
        put(speed, (s.gpus[i as usize].fan_percent + util / 2).min(100))
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetFanSpeed(device: nvmlDevice_t, speed: *mut c_uint) -> nvmlReturn_t {
    fan_speed("nvmlDeviceGetFanSpeed", device, speed)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetFanSpeed_v2(device: nvmlDevice_t, fan: c_uint, speed: *mut c_uint) -> nvmlReturn_t {
    if fan != 0 {
        return NVML_ERROR_INVALID_ARGUMENT;
    }
    fan_speed("nvmlDeviceGetFanSpeed_v2", device, speed)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetNumFans(device: nvmlDevice_t, count: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetNumFans", device, |_, _| put(count, 1)))
}

/// Clock domains: graphics, SM, memory, video.
fn clock_mhz(kind: c_uint, util: u32, max: bool) -> Result<c_uint, u32> {
    let (idle, top) = match kind {
        0 | 1 => (210, 2520),
        2 => (405, 10_501),
        3 => (1185, 1965),
        _ => return Err(NVML_ERROR_INVALID_ARGUMENT),
    };
    Ok(if max { top } else { idle + (top - idle) * util / 100 })
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetClockInfo(device: nvmlDevice_t, kind: c_uint, clock: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetClockInfo", device, |s, i| put(clock, clock_mhz(kind, reading(s, i).utilization, false)?)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetMaxClockInfo(device: nvmlDevice_t, kind: c_uint, clock: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetMaxClockInfo", device, |_, _| put(clock, clock_mhz(kind, 0, true)?)))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetPerformanceState(device: nvmlDevice_t, state: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetPerformanceState", device, |s, i| {
        let busy = reading(s, i).utilization > 0;
        put(state, if busy { 2 } else { 8 })
    }))
}

fn processes(name: &str, device: nvmlDevice_t, count: *mut c_uint, infos: *mut nvmlProcessInfo_t, compute: bool) -> nvmlReturn_t {
    status(self::device(name, device, |s, i| {
        if count.is_null() {
            return Err(NVML_ERROR_INVALID_ARGUMENT);
        }
        // Simulated jobs are compute work; nothing draws graphics here.
        let found = if compute { reading(s, i).processes } else { Vec::new() };
        // SAFETY: non-null, checked above.
        let capacity = unsafe { *count } as usize;
        put(count, found.len() as c_uint)?;
        if found.is_empty() {
            return Ok(());
        }
        if infos.is_null() || capacity < found.len() {
            return Err(NVML_ERROR_INSUFFICIENT_SIZE);
        }
        for (k, p) in found.iter().enumerate() {
            let info = nvmlProcessInfo_t {
                pid: p.pid,
                usedGpuMemory: p.memory_mib * MIB,
                gpuInstanceId: NO_INSTANCE,
                computeInstanceId: NO_INSTANCE,
            };
            // SAFETY: the caller gave room for `capacity` entries and k < found.len() <= capacity.
            unsafe { infos.add(k).write(info) };
        }
        Ok(())
    }))
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetComputeRunningProcesses_v3(device: nvmlDevice_t, count: *mut c_uint, infos: *mut nvmlProcessInfo_t) -> nvmlReturn_t {
    processes("nvmlDeviceGetComputeRunningProcesses_v3", device, count, infos, true)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetComputeRunningProcesses_v2(device: nvmlDevice_t, count: *mut c_uint, infos: *mut nvmlProcessInfo_t) -> nvmlReturn_t {
    processes("nvmlDeviceGetComputeRunningProcesses_v2", device, count, infos, true)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetGraphicsRunningProcesses_v3(device: nvmlDevice_t, count: *mut c_uint, infos: *mut nvmlProcessInfo_t) -> nvmlReturn_t {
    processes("nvmlDeviceGetGraphicsRunningProcesses_v3", device, count, infos, false)
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetGraphicsRunningProcesses_v2(device: nvmlDevice_t, count: *mut c_uint, infos: *mut nvmlProcessInfo_t) -> nvmlReturn_t {
    processes("nvmlDeviceGetGraphicsRunningProcesses_v2", device, count, infos, false)
}

/// Consumer GPUs have no MIG: clients treat `NOT_SUPPORTED` as "MIG off".
#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetMigMode(device: nvmlDevice_t, _current: *mut c_uint, _pending: *mut c_uint) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetMigMode", device, |_, _| Err::<(), u32>(NVML_ERROR_NOT_SUPPORTED)))
}

/// Flags and modes that are constant on a simulated GPU.
macro_rules! constant {
    ($($name:ident = $value:expr;)*) => {$(
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(device: nvmlDevice_t, out: *mut c_uint) -> nvmlReturn_t {
            status(self::device(stringify!($name), device, |_, _| put(out, $value)))
        }
    )*};
}

constant! {
    // Disabled: persistence mode, display mode and active display.
    nvmlDeviceGetPersistenceMode = 0;
    nvmlDeviceGetDisplayMode = 0;
    nvmlDeviceGetDisplayActive = 0;
    // NVML_COMPUTEMODE_DEFAULT.
    nvmlDeviceGetComputeMode = 0;
    // NVML_BRAND_GEFORCE.
    nvmlDeviceGetBrand = 5;
    nvmlDeviceGetCurrPcieLinkGeneration = 4;
    nvmlDeviceGetCurrPcieLinkWidth = 16;
}

#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceGetCudaComputeCapability(device: nvmlDevice_t, major: *mut c_int, minor: *mut c_int) -> nvmlReturn_t {
    status(self::device("nvmlDeviceGetCudaComputeCapability", device, |_, _| {
        put(major, 8)?;
        put(minor, 9)
    }))
}

/// Queries a simulated GPU cannot answer, as on a real consumer GPU under Linux: clients such as
/// nvitop show them as N/A when told `NOT_SUPPORTED`, but log an error when the symbol is missing.
macro_rules! not_supported {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(device: nvmlDevice_t, $($arg: $ty),*) -> nvmlReturn_t {
            $(let _ = $arg;)*
            status(self::device(stringify!($name), device, |_, _| Err::<(), u32>(NVML_ERROR_NOT_SUPPORTED)))
        }
    )*};
}

not_supported! {
    // Windows only (WDDM/TCC).
    nvmlDeviceGetDriverModel(current: *mut c_uint, pending: *mut c_uint);
    nvmlDeviceGetDriverModel_v2(current: *mut c_uint, pending: *mut c_uint);
    // No ECC on GeForce.
    nvmlDeviceGetTotalEccErrors(error_type: c_uint, counter_type: c_uint, count: *mut c_ulonglong);
    // Per-process SM samples are not simulated.
    nvmlDeviceGetProcessUtilization(samples: *mut c_void, count: *mut c_uint, last_seen: c_ulonglong);
}
