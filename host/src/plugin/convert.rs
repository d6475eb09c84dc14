//! Every conversion between the host's WIT bindings and the types the rest of gantry uses, in one
//! place. Both sides are generated from `wit/gantry.wit`, so these are field-for-field copies.

use super::bindings::{parser, policy, provider};
use super::{PluginInfo, PluginKind};
use policy::gantry::plugin::scheduling as wit;

macro_rules! info_from {
    ($($world:ident),*) => {$(
        impl From<$world::exports::gantry::plugin::meta::PluginInfo> for PluginInfo {
            fn from(i: $world::exports::gantry::plugin::meta::PluginInfo) -> Self {
                use $world::exports::gantry::plugin::meta::PluginKind as K;
                PluginInfo {
                    name: i.name,
                    version: i.version,
                    kind: match i.kind {
                        K::Policy => PluginKind::Policy,
                        K::Parser => PluginKind::Parser,
                        K::Provider => PluginKind::Provider,
                    },
                    wit_version: i.wit_version,
                }
            }
        }
    )*};
}

info_from!(policy, parser, provider);

pub fn pending_job(j: &placement::PendingJob) -> wit::PendingJob {
    wit::PendingJob {
        id: j.id,
        queue: j.queue,
        min_gpus: j.min_gpus,
        max_gpus: j.max_gpus,
        memory_mib: j.memory_mib,
        priority: j.priority,
        attempts: j.attempts,
        submitted_ms: j.submitted_ms,
        labels: j.labels.clone(),
        owner: j.owner.clone(),
        owner_usage: j.owner_usage,
    }
}

pub fn gpu_state(g: &placement::GpuState) -> wit::GpuState {
    wit::GpuState {
        index: g.index,
        uuid: g.uuid.clone(),
        name: g.name.clone(),
        memory_total_mib: g.memory_total_mib,
        memory_used_mib: g.memory_used_mib,
        memory_peak_mib: g.memory_peak_mib,
        utilization_mean: g.utilization_mean,
        temperature_c: g.temperature_c,
        power_mw: g.power_mw,
        memory_reserved_mib: g.memory_reserved_mib,
        gantry_jobs: g.gantry_jobs,
        foreign_processes: g.foreign_processes,
        eligible: g.eligible,
    }
}

pub fn rules(r: &placement::Rules) -> wit::Rules {
    wit::Rules {
        gpu_left: r.gpu_left,
        min_gpu: r.min_gpu,
        max_gpu: r.max_gpu,
        memory_margin_mib: r.memory_margin_mib,
        allow_sharing: r.allow_sharing,
        memory_save_mode: r.memory_save_mode,
        params: r.params.clone(),
    }
}

pub fn placement(p: wit::Placement) -> placement::Placement {
    placement::Placement { job: p.job, gpus: p.gpus }
}

/// A command file's burst: the file keeps whole seconds, the job milliseconds (saturating: a wait
/// past any bound is refused by the job's checks, naming it).
pub fn burst_from_file(b: &parser::exports::gantry::plugin::parser::Burst) -> crate::model::Burst {
    crate::model::Burst { max_wait_ms: b.max_wait_s.map(|s| s.saturating_mul(1000)), providers: b.providers.clone() }
}

/// `None` when the wait is not whole seconds, which a command file can't write.
pub fn burst_to_file(b: &crate::model::Burst) -> Option<parser::exports::gantry::plugin::parser::Burst> {
    let max_wait_s = match b.max_wait_ms {
        Some(ms) if ms % 1000 != 0 => return None,
        ms => ms.map(|ms| ms / 1000),
    };
    Some(parser::exports::gantry::plugin::parser::Burst { max_wait_s, providers: b.providers.clone() })
}
