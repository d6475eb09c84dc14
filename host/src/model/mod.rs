//! gantry's domain records: jobs, runs and queues, the scheduling rules, who is calling, and
//! what the scheduler reports. Every layer speaks these types, and this module imports nothing
//! else of gantry: it is the floor of the house.
//!
//! - `job`: jobs and their attempts, and what a user submits;
//! - `submission`: a submission checked field by field ([`Batch`]);
//! - `array`: arrays and sweeps, which a submission expands into one job per element;
//! - `run`: command files loaded as runs, and queue state;
//! - `rules`: the scheduling rules;
//! - `status`: counts, queues, runs, progress, usage and events;
//! - `principal`: who is calling and whose jobs they may touch;
//! - `time`: the clock and the seeds' timestamp format;
//! - `base_url`: where another daemon is served;
//! - `units`: sizes as the seeds write them.

/// A record's number, shown and parsed as just the number (JSON, paths, logs), and kept apart
/// from other kinds of number by its type.
macro_rules! number {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}
use number;

pub mod array;
pub mod base_url;
pub mod job;
pub mod principal;
pub mod rules;
pub mod run;
pub mod status;
pub mod submission;
pub mod time;
pub mod units;

pub use job::{Attempt, Burst, Dependency, GpuCount, Job, JobId, JobSpec, JobState, JobUsage, RemoteAttempt, RemoteCost, UnansweredSubmit, JOB_ID_VAR};
pub use principal::{Principal, Role, Scope};
pub use rules::{Budgets, Cap, GroupCap, Quotas, SchedulingRules};
pub use run::{QueueState, Run, RunId, RunMode, RunState};
pub use submission::{limits, After, ArrayBatch, Batch, FieldError, NewJob};
pub use array::{ArrayPlace, ArraySpec};
pub use status::{Counts, CurrentJob, Event, GroupQuota, Held, JobFilter, QueueProgress, QueueStatus, QuotaStatus, RunProgress, RunStatus, RunningJob, Status, Usage, WaitHere};
pub use base_url::BaseUrl;
pub use time::{iso_time, now_ms, Clock};
