//! Write a gantry policy in a few lines of Rust (and a command-file parser: [`parser`]; what a
//! plugin may read beyond its input: [`grants`]).
//!
//! A policy is called once per scheduling pass with the jobs that may start, the GPUs as the
//! sampler sees them and the rules in force, and answers where each job goes. Whatever it
//! answers, the host checks again ([`validate`]) and drops what does not fit; [`place_by`] does
//! the fitting, the GPU count and the booking as that check does, so a policy usually only says
//! which GPUs it prefers:
//!
//! ```
//! use gantry_plugin::{best_fit, place_by, GpuState, PendingJob, Placement, Policy, Rules};
//!
//! struct Coolest;
//!
//! impl Policy for Coolest {
//!     fn place(pending: &[PendingJob], gpus: &[GpuState], rules: &Rules) -> Result<Vec<Placement>, String> {
//!         let heat = |c: &gantry_plugin::Candidate| c.gpu.temperature_c.unwrap_or(u32::MAX);
//!         Ok(place_by(pending, gpus, rules, |a, b| heat(a).cmp(&heat(b)).then(best_fit(a, b))))
//!     }
//! }
//!
//! gantry_plugin::export_policy!(Coolest);
//! ```
//!
//! `gantry plugin new policy NAME` makes a project around such a file; `gantry plugin build`
//! builds it for `wasm32-wasip2` and checks it as the daemon would load it.

pub mod grants;
pub mod parser;
pub mod testing;

#[doc(hidden)]
pub use placement::{bindings, export};
pub use placement::{
    best_fit, coolest, free_mib, least_loaded, place_by, spread, validate, wit_version, Candidate, GpuState, MetaGuest, PendingJob, Placement, PluginInfo,
    PluginKind, PolicyGuest, Rejection, Rules,
};

/// A GPU selection policy. Its answer is a proposal: placements the host's check refuses are
/// dropped (and their jobs wait for the next pass); an `Err` makes the host place this pass with
/// its native best fit and count a failure against the plugin.
pub trait Policy {
    fn place(pending: &[PendingJob], gpus: &[GpuState], rules: &Rules) -> Result<Vec<Placement>, String>;
}

/// Exports `$policy` (a type implementing [`Policy`]) as the component's policy. The plugin's
/// name is the crate's package name, or `$name`; its version is the crate's.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        $crate::export_policy!($policy, env!("CARGO_PKG_NAME"));
    };
    ($policy:ty, $name:expr) => {
        #[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
        struct GantryPluginExports;

        impl $crate::MetaGuest for GantryPluginExports {
            fn info() -> $crate::PluginInfo {
                $crate::PluginInfo { name: $name.into(), version: env!("CARGO_PKG_VERSION").into(), kind: $crate::PluginKind::Policy, wit_version: $crate::wit_version() }
            }
        }

        impl $crate::PolicyGuest for GantryPluginExports {
            fn place(pending: Vec<$crate::PendingJob>, gpus: Vec<$crate::GpuState>, rules: $crate::Rules) -> Result<Vec<$crate::Placement>, String> {
                <$policy as $crate::Policy>::place(&pending, &gpus, &rules)
            }
        }

        // Exported names such as `gantry:plugin/policy@0.5.0#place` are only valid in a component.
        #[cfg(target_family = "wasm")]
        $crate::export!(GantryPluginExports with_types_in $crate::bindings);
        // Natively (the policy's tests) nothing is exported, and the policy is still in use.
        #[cfg(not(target_family = "wasm"))]
        const _: fn(&[$crate::PendingJob], &[$crate::GpuState], &$crate::Rules) -> Result<Vec<$crate::Placement>, String> = <$policy as $crate::Policy>::place;
    };
}
