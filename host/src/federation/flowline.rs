//! Seed 003's `/api/info`, both ways: what this daemon answers as a FlowLine agent ("slave"), and
//! how a master reads the answer of a slave it pulls — a gantry daemon, or FlowLine's own Python
//! slave, which writes GPU memory as MB with a decimal, processes as `{pid, name, username,
//! memory_mb, cmdline}`, and system memory in GB.

use super::{Node, Versions};
use crate::gpu::{DriverInfo, GpuProcess, GpuReading, GpuSnapshot, GpuSummary, ProcessKind};
use crate::host_info::HostInfo;
use crate::model::units::{gb, mib_of_gb};
use serde_json::{json, Value};

/// More than this many GPUs or processes on one GPU in a slave's answer are not read.
const MAX_GPUS: usize = 64;
const MAX_PROCESSES: usize = 1024;
/// Names and commands longer than this are cut.
const MAX_TEXT: usize = 4096;

/// A node as seed 003's `/api/info` answers: timestamp, system block, GPUs. `simulated`,
/// `cpu_usage`, `os` and `gantry` (the version) are more than the seed's table has; FlowLine's
/// slave sends the middle two as well.
pub fn info_of(node: &Node) -> Value {
    let gpus: Vec<Value> = node
        .gpus
        .iter()
        .filter_map(|s| s.reading.snapshot())
        .map(|g| {
            json!({
                "id": g.index,
                "name": g.name,
                "memory": { "total": g.memory_total_mib, "used": g.memory_used_mib, "free": g.memory_free_mib },
                "utilization": g.utilization_gpu,
                "temperature": g.temperature_c,
                "power": { "current": g.power_draw_w, "max": g.power_limit_w },
                "processes": g.processes.iter().map(process_info).collect::<Vec<_>>(),
            })
        })
        .collect();
    let host = &node.host;
    json!({
        "timestamp": node.sampled_at_ms as f64 / 1000.0,
        "system": {
            "hostname": host.hostname,
            "cpu_model": host.cpu_model,
            "cpu_cores": host.cpu_cores,
            "cpu_usage": host.cpu_percent,
            "os": host.os,
            "memory": { "total": gb(host.memory_total_mib), "used": gb(host.memory_used_mib), "percent": host.memory_percent },
            "swap": { "total": gb(host.swap_total_mib), "used": gb(host.swap_used_mib), "percent": host.swap_percent },
        },
        "gpus": gpus,
        "simulated": node.simulated,
        "gantry": node.versions.gantry,
    })
}

/// A process in gantry's fields and in those FlowLine's slave writes (its master and web page
/// read them), with FlowLine's "N/A" for the times gantry does not keep.
fn process_info(process: &GpuProcess) -> Value {
    let mut entry = serde_json::to_value(process).unwrap_or_else(|_| json!({}));
    let executable = process.command.as_deref().and_then(|c| c.split_whitespace().next()).map(|first| first.rsplit('/').next().unwrap_or(first));
    entry["name"] = json!(executable.unwrap_or("Unknown"));
    entry["username"] = json!(process.user.as_deref().unwrap_or("Unknown"));
    entry["memory_mb"] = json!(process.used_memory_mib.unwrap_or(0) as f64);
    entry["cmdline"] = json!(process.command.as_deref().unwrap_or(""));
    entry["start_time"] = json!("N/A");
    entry["elapsed_time"] = json!("N/A");
    entry
}

/// What a slave's `/api/info` says, as the node a report carries. Fields the seed does not
/// have stay unknown (`None`, 0); a missing `system` or `gpus` is refused, naming it.
pub fn node_of_info(info: &Value) -> Result<Node, String> {
    let system = info.get("system").filter(|s| s.is_object()).ok_or("`system` is not an object")?;
    let gpus = info.get("gpus").and_then(Value::as_array).ok_or("`gpus` is not a list")?;
    let mut read = Vec::new();
    for (i, gpu) in gpus.iter().take(MAX_GPUS).enumerate() {
        read.push(gpu_of(gpu).map_err(|e| format!("`gpus[{i}]`: {e}"))?);
    }
    let memory = |block: &str, key: &str| mib_of_gb(number(system, &[block, key]).unwrap_or(0.0));
    let host = HostInfo {
        hostname: text(system, "hostname"),
        os: text(system, "os"),
        kernel: None,
        cpu_model: text(system, "cpu_model"),
        cpu_cores: count(system, &["cpu_cores"]).unwrap_or(0) as usize,
        cpu_percent: number(system, &["cpu_usage"]).unwrap_or(0.0) as f32,
        load_average: [0.0; 3],
        memory_total_mib: memory("memory", "total"),
        memory_used_mib: memory("memory", "used"),
        memory_percent: number(system, &["memory", "percent"]).unwrap_or(0.0),
        swap_total_mib: memory("swap", "total"),
        swap_used_mib: memory("swap", "used"),
        swap_percent: number(system, &["swap", "percent"]).unwrap_or(0.0),
        uptime_s: 0,
    };
    let timestamp = info.get("timestamp").and_then(Value::as_f64).filter(|t| t.is_finite() && *t > 0.0);
    Ok(Node {
        simulated: info.get("simulated").and_then(Value::as_bool).unwrap_or(false),
        // Empty: not a gantry daemon, or one too old to say.
        versions: Versions { gantry: text(info, "gantry").unwrap_or_default(), wit: String::new() },
        driver: DriverInfo::default(),
        host,
        sampled_at_ms: timestamp.map_or_else(crate::model::now_ms, |t| (t * 1000.0) as u64),
        gpus: read,
    })
}

fn gpu_of(gpu: &Value) -> Result<GpuSummary, String> {
    let index = count(gpu, &["id"]).ok_or("`id` is not a GPU number")?;
    let index = u32::try_from(index).map_err(|_| format!("`id` {index} is not a GPU number"))?;
    let mib = |key: &str| count(gpu, &["memory", key]).unwrap_or(0);
    let (total, used, free) = (mib("total"), mib("used"), mib("free"));
    let processes = gpu.get("processes").and_then(Value::as_array).map(|p| p.iter().take(MAX_PROCESSES).filter_map(process_of).collect()).unwrap_or_default();
    let utilization = count(gpu, &["utilization"]).and_then(|u| u32::try_from(u).ok());
    let snapshot = GpuSnapshot {
        index,
        uuid: text(gpu, "uuid").unwrap_or_default(),
        name: text(gpu, "name").unwrap_or_default(),
        pci_bus_id: None,
        memory_total_mib: total,
        memory_used_mib: used,
        memory_free_mib: free,
        memory_reserved_mib: total.saturating_sub(used.saturating_add(free)),
        utilization_gpu: utilization,
        utilization_memory: None,
        temperature_c: count(gpu, &["temperature"]).and_then(|t| u32::try_from(t).ok()),
        memory_temperature_c: None,
        power_draw_w: number(gpu, &["power", "current"]),
        // FlowLine's slave sends 0 when the driver would not tell.
        power_limit_w: number(gpu, &["power", "max"]).filter(|w| *w > 0.0),
        fan_percent: None,
        clock_graphics_mhz: None,
        clock_sm_mhz: None,
        clock_memory_mhz: None,
        performance_state: None,
        processes,
    };
    // A pulled GPU has no window: its latest use is its peak, and all of it is someone else's
    // as far as this master is concerned.
    Ok(GpuSummary { reading: GpuReading::Available(snapshot), memory_peak_mib: used, foreign_peak_mib: used, utilization_mean: utilization })
}

/// A process in gantry's shape or FlowLine's; one without a pid is skipped.
fn process_of(process: &Value) -> Option<GpuProcess> {
    let pid = u32::try_from(count(process, &["pid"])?).ok()?;
    let memory = count(process, &["used_memory_mib"]).or_else(|| count(process, &["memory_mb"]));
    let kind = if process.get("kind").and_then(Value::as_str) == Some("graphics") { ProcessKind::Graphics } else { ProcessKind::Compute };
    Some(GpuProcess {
        pid,
        kind,
        used_memory_mib: memory,
        user: text(process, "user").or_else(|| text(process, "username")),
        command: text(process, "command").or_else(|| text(process, "cmdline")).or_else(|| text(process, "name")),
        job: count(process, &["job"]).map(crate::model::JobId),
    })
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn number(value: &Value, path: &[&str]) -> Option<f64> {
    at(value, path)?.as_f64().filter(|n| n.is_finite())
}

/// A whole number, from an integer or from a number with a decimal (FlowLine's MB).
fn count(value: &Value, path: &[&str]) -> Option<u64> {
    number(value, path).filter(|n| *n >= 0.0 && *n < 1e15).map(|n| n.round() as u64)
}

fn text(value: &Value, key: &str) -> Option<String> {
    let s = value.get(key)?.as_str()?;
    Some(s.chars().take(MAX_TEXT).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seed 003's example answer, as its document gives it (with `processes` as FlowLine's slave
    /// fills them, where the document writes `[...]`); the end-to-end tests serve the same file.
    fn seed_example() -> Value {
        serde_json::from_str(include_str!("../../../tests/data/seed003_info.json")).expect("the seed's example")
    }

    #[test]
    fn a_flowline_slaves_answer_is_read_as_a_node() {
        let node = node_of_info(&seed_example()).expect("read");
        assert_eq!((node.sampled_at_ms, node.versions.gantry.as_str(), node.simulated), (1_706_000_000_000, "", false));
        assert_eq!((node.host.hostname.as_deref(), node.host.cpu_cores, node.host.memory_total_mib, node.host.memory_used_mib), (Some("gpu-server-1"), 28, 131_072, 46_285));
        let gpu = node.gpus[0].reading.snapshot().expect("available");
        assert_eq!((gpu.index, gpu.name.as_str(), gpu.memory_total_mib, gpu.memory_used_mib, gpu.memory_free_mib, gpu.memory_reserved_mib), (0, "NVIDIA GeForce RTX 3090", 24_576, 8192, 16_384, 0));
        assert_eq!((gpu.utilization_gpu, gpu.temperature_c, gpu.power_draw_w, gpu.power_limit_w), (Some(45), Some(65), Some(180.5), Some(350.0)));
        let process = &gpu.processes[0];
        assert_eq!((process.pid, process.used_memory_mib, process.user.as_deref(), process.command.as_deref()), (4242, Some(8000), Some("Host Process"), Some("python train.py")));
    }

    #[test]
    fn what_this_daemon_answers_reads_back_as_the_same_node() {
        let node = node_of_info(&seed_example()).expect("read");
        let again = node_of_info(&info_of(&node)).expect("read back");
        assert_eq!(again.gpus[0].reading, node.gpus[0].reading);
        assert_eq!((again.host.memory_total_mib, &again.host.cpu_model), (node.host.memory_total_mib, &node.host.cpu_model));
        // FlowLine's master and page read a process's fields as its slave writes them.
        let process = &info_of(&node)["gpus"][0]["processes"][0];
        assert_eq!((process["name"].as_str(), process["username"].as_str(), process["memory_mb"].as_f64(), process["cmdline"].as_str()), (Some("python"), Some("Host Process"), Some(8000.0), Some("python train.py")));
    }

    #[test]
    fn an_answer_that_is_not_seed_003s_names_the_field() {
        assert_eq!(node_of_info(&json!({"gpus": []})).err().as_deref(), Some("`system` is not an object"));
        assert_eq!(node_of_info(&json!({"system": {}, "gpus": {}})).err().as_deref(), Some("`gpus` is not a list"));
        assert_eq!(node_of_info(&json!({"system": {}, "gpus": [{"id": -1}]})).err().as_deref(), Some("`gpus[0]`: `id` is not a GPU number"));
        // Unknown numbers stay unknown rather than failing: FlowLine sends "N/A" for some.
        let node = node_of_info(&json!({"system": {"cpu_cores": "N/A"}, "gpus": [{"id": 1, "temperature": "N/A"}]})).expect("read");
        assert_eq!((node.host.cpu_cores, node.gpus[0].reading.snapshot().and_then(|g| g.temperature_c)), (0, None));
    }
}
