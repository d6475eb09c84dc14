//! Where jobs go: the active policy plugin proposes, the host re-checks, and the native best fit
//! decides whenever the plugin can't (fail-open, as Envoy treats a failing filter).
//!
//! The check is the same whoever proposed: a placement naming a GPU that does not exist, an
//! ineligible GPU, or memory that is not there after reservations and the window's peak use is
//! dropped with a logged reason, and its job waits for the next pass.

use crate::model::SchedulingRules;
use crate::plugin::PluginRuntime;
use placement::{GpuState, PendingJob, Placement, Ranking, Rejection, Rules};
use std::sync::Arc;

/// Who made a pass's decisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decider {
    Plugin { name: String, version: String },
    /// The native best fit, and why the plugin was not used.
    Fallback { reason: String },
}

#[derive(Clone, Debug)]
pub struct PassOutcome {
    pub placements: Vec<Placement>,
    pub rejected: Vec<Rejection>,
    pub decider: Decider,
}

pub struct PolicyService {
    runtime: Arc<PluginRuntime>,
    active: String,
}

impl PolicyService {
    pub fn new(runtime: Arc<PluginRuntime>, active: impl Into<String>) -> Self {
        PolicyService { runtime, active: active.into() }
    }

    pub fn active_name(&self) -> &str {
        &self.active
    }

    /// The policy the next pass asks: chosen per pass, so a switch needs no restart (and one
    /// whose plugin is not loaded yet falls back until it is).
    pub fn set_active(&mut self, name: String) {
        self.active = name;
    }

    /// One scheduling pass. Blocking: the plugin call runs here.
    pub fn place(&self, pending: &[PendingJob], gpus: &[GpuState], rules: &Rules) -> PassOutcome {
        if pending.is_empty() {
            return PassOutcome { placements: vec![], rejected: vec![], decider: Decider::Fallback { reason: "nothing pending".into() } };
        }
        // A plugin that failed recently answers "quarantined" without being called.
        let (proposed, decider) = match self.runtime.get(&self.active) {
            None => (native(pending, gpus, rules), Decider::Fallback { reason: format!("policy {} is not loaded", self.active) }),
            Some(plugin) => match plugin.place(pending, gpus, rules) {
                Ok(proposed) => (proposed, Decider::Plugin { name: plugin.info.name.clone(), version: plugin.info.version.clone() }),
                Err(error) => (native(pending, gpus, rules), Decider::Fallback { reason: error.to_string() }),
            },
        };
        let (placements, rejected) = placement::validate(proposed, pending, gpus, rules);
        if let Some(first) = rejected.first() {
            // One line per pass, however many were dropped: each job's own reason says why.
            tracing::warn!(policy = ?decider, dropped = rejected.len(), first = %first, "placements dropped");
        }
        PassOutcome { placements, rejected, decider }
    }
}

/// The record the policy plugin receives of the rules in force.
pub fn rules_for(rules: &SchedulingRules) -> Rules {
    Rules {
        gpu_left: rules.gpu_left,
        min_gpu: rules.min_gpu,
        max_gpu: rules.max_gpu,
        memory_margin_mib: rules.memory_margin_mib,
        allow_sharing: rules.allow_sharing,
        memory_save_mode: rules.memory_save_mode,
        params: rules.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// The native best fit: the same code as the `policy-best-fit` component, compiled into the host.
pub fn native(pending: &[PendingJob], gpus: &[GpuState], rules: &Rules) -> Vec<Placement> {
    placement::place(pending, gpus, rules, Ranking::BestFit)
}
