//! Write a gantry provider adapter: the mapping between gantry's jobs and another system's API,
//! not the plumbing around it.
//!
//! A provider instance (`[providers.NAME]` in `gantry.toml`) is this plugin run with the
//! instance's grants: its settings as environment variables ([`Settings`]: `BASE_URL`, `TOKEN`,
//! and each option in upper case), and `wasi:http` to its base URL only ([`http::Api`]). The host
//! calls `submit` once per attempt (again with the same `key` after a restart that lost the
//! answer: find the job by its key before making another), then `status` until the job is
//! final, and `cancel` when asked. A [`ProviderError::Transport`] makes the host wait and ask
//! again later; any other error on `submit` is a refusal, and the job fails with its message.
//!
//! ```no_run
//! use gantry_provider::{JobConfig, JobResult, JobState, Provider, ProviderError};
//!
//! struct Echo;
//!
//! impl Provider for Echo {
//!     fn submit(job: &JobConfig) -> Result<JobResult, ProviderError> {
//!         Ok(gantry_provider::result(&job.key, JobState::Pending))
//!     }
//!     fn status(id: &str) -> Result<JobResult, ProviderError> {
//!         Ok(gantry_provider::result(id, JobState::Succeeded))
//!     }
//!     fn cancel(id: &str) -> Result<JobResult, ProviderError> {
//!         Ok(gantry_provider::result(id, JobState::Cancelled))
//!     }
//! }
//!
//! gantry_provider::export_provider!(Echo);
//! ```

pub mod http;
pub mod sign;
mod settings;
pub mod testing;

pub use settings::Settings;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "provider-plugin",
        pub_export_macro: true,
        export_macro_name: "export_provider_bindings",
        default_bindings_module: "gantry_provider::bindings",
        additional_derives: [PartialEq],
    });
}

#[doc(hidden)]
pub use bindings::exports::gantry::plugin::meta::{Guest as MetaGuest, PluginInfo, PluginKind};
#[doc(hidden)]
pub use bindings::exports::gantry::plugin::provider::Guest as ProviderGuest;
pub use bindings::exports::gantry::plugin::provider::{CostEstimate, GpuSpec, JobConfig, JobResult, JobState, Offer, ProviderError};

/// A provider adapter. `logs`, `estimate_cost` and `offers` have answers for a system that has
/// none of them.
pub trait Provider {
    fn submit(job: &JobConfig) -> Result<JobResult, ProviderError>;
    fn status(id: &str) -> Result<JobResult, ProviderError>;
    fn cancel(id: &str) -> Result<JobResult, ProviderError>;

    /// The last `tail_lines` of the job's output. Without a log API, the host reads the file the
    /// job's `log_path` names.
    fn logs(id: &str, _tail_lines: u32) -> Result<String, ProviderError> {
        Err(ProviderError::InvalidConfig(format!("this provider serves no logs; the host reads job {id}'s log_path")))
    }

    /// A cluster has no prices of its own; a site that charges its groups back sets one per GPU
    /// and hour on the instance ([`Settings::site_rate`]).
    fn estimate_cost(job: &JobConfig) -> Result<CostEstimate, ProviderError> {
        Settings::from_host().site_rate(job)
    }

    /// A cluster's one offer is its site rate, if it has one ([`Settings::site_offers`]).
    fn offers(gpu: &GpuSpec) -> Result<Vec<Offer>, ProviderError> {
        Settings::from_host().site_offers(gpu)
    }

    /// A system that keeps finished jobs for its own retention (Slurm, Kubernetes) has nothing
    /// to release; a cloud deletes what it still bills for.
    fn release(_id: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// A result with only its id and state: what's left is filled in as the system tells it.
pub fn result(id: &str, state: JobState) -> JobResult {
    JobResult { provider_job_id: id.to_string(), state, message: String::new(), exit_code: None, started_ms: None, ended_ms: None, log_path: None }
}

/// The `gantry:plugin` package version these bindings were generated from.
pub fn wit_version() -> String {
    let wit = include_str!("../../../wit/gantry.wit");
    wit.lines().find_map(|l| l.trim().strip_prefix("package gantry:plugin@")).map(|v| v.trim_end_matches(';').to_string()).unwrap_or_default()
}

/// Exports `$provider` (a type implementing [`Provider`]) as the component's provider. The
/// plugin's name is the crate's package name, or `$name`; its version is the crate's.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        $crate::export_provider!($provider, env!("CARGO_PKG_NAME"));
    };
    ($provider:ty, $name:expr) => {
        #[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
        struct GantryProviderExports;

        impl $crate::MetaGuest for GantryProviderExports {
            fn info() -> $crate::PluginInfo {
                $crate::PluginInfo { name: $name.into(), version: env!("CARGO_PKG_VERSION").into(), kind: $crate::PluginKind::Provider, wit_version: $crate::wit_version() }
            }
        }

        impl $crate::ProviderGuest for GantryProviderExports {
            fn submit(job: $crate::JobConfig) -> Result<$crate::JobResult, $crate::ProviderError> {
                <$provider as $crate::Provider>::submit(&job)
            }
            fn status(id: String) -> Result<$crate::JobResult, $crate::ProviderError> {
                <$provider as $crate::Provider>::status(&id)
            }
            fn logs(id: String, tail_lines: u32) -> Result<String, $crate::ProviderError> {
                <$provider as $crate::Provider>::logs(&id, tail_lines)
            }
            fn cancel(id: String) -> Result<$crate::JobResult, $crate::ProviderError> {
                <$provider as $crate::Provider>::cancel(&id)
            }
            fn estimate_cost(job: $crate::JobConfig) -> Result<$crate::CostEstimate, $crate::ProviderError> {
                <$provider as $crate::Provider>::estimate_cost(&job)
            }
            fn offers(gpu: $crate::GpuSpec) -> Result<Vec<$crate::Offer>, $crate::ProviderError> {
                <$provider as $crate::Provider>::offers(&gpu)
            }
            fn release(id: String) -> Result<(), $crate::ProviderError> {
                <$provider as $crate::Provider>::release(&id)
            }
        }

        #[cfg(target_family = "wasm")]
        $crate::bindings::export_provider_bindings!(GantryProviderExports with_types_in $crate::bindings);
        #[cfg(not(target_family = "wasm"))]
        const _: fn(&$crate::JobConfig) -> Result<$crate::JobResult, $crate::ProviderError> = <$provider as $crate::Provider>::submit;
    };
}
