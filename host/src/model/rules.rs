//! The scheduling rules in force: `[scheduler]` in `gantry.toml`, with the meaning (and the
//! accepted names) of seed 004's `gpu_manage.yaml`.

use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct SchedulingRules {
    /// GPUs jobs may use; `None` means all (`use_all_gpus`).
    pub eligible_gpus: Option<Vec<u32>>,
    pub gpu_left: u32,
    /// The range elastic jobs of a multi-GPU run get when their block gives none.
    pub min_gpu: u32,
    pub max_gpu: u32,
    pub memory_margin_mib: u64,
    /// `maximize_resource_utilization`: a GPU running a job may take another when memory fits.
    pub allow_sharing: bool,
    pub memory_save_mode: bool,
    /// Retries a job gets unless it says otherwise.
    pub default_retries: u32,
    /// Consecutive failures in a queue after which it pauses for `backoff`; 0 never pauses.
    pub max_retry_before_backoff: u32,
    pub backoff: Duration,
    /// Between SIGTERM and SIGKILL when a job is cancelled.
    pub cancel_grace: Duration,
    pub log_max_bytes: u64,
    pub log_keep: u32,
    /// How long a job that may burst ([`super::Burst`]) waits here, unless it says.
    pub burst_max_wait: Duration,
    /// The most a bursting job may cost an hour where it goes, and in which currency
    /// (`burst_max_price_per_hour`, `burst_price_currency`): a dearer provider is passed over.
    /// A job that names its provider chose it, and is not held to this.
    pub burst_max_price: Option<(f64, String)>,
    /// Queues whose jobs burst unless they say where they run: names, or prefixes ending in `*`.
    pub burst_queues: Vec<String>,
    /// Free-form parameters handed to the policy plugin.
    pub params: BTreeMap<String, String>,
    /// `[quotas]`: what each user and group may hold at once, and how usage decays.
    pub quotas: Quotas,
}

/// A cap on what one user, or one group's members together, may hold at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Cap {
    pub gpus: Option<u32>,
    /// GPU memory over all GPUs held (memory per GPU × GPUs).
    pub memory_mib: Option<u64>,
}

/// A Unix group's cap, over its members' jobs together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCap {
    pub name: String,
    pub gid: u32,
    pub cap: Cap,
}

/// Sharing GPUs between people (HTCondor's and Slurm's fair share in their simplest form): caps
/// per user and per group, and an order between users that favours whoever used less lately.
#[derive(Clone, Debug, PartialEq)]
pub struct Quotas {
    /// Every user without a cap of their own.
    pub default: Cap,
    pub users: BTreeMap<String, Cap>,
    pub groups: Vec<GroupCap>,
    /// Past GPU use counts half as much this much later.
    pub half_life: Duration,
    /// Jobs one owner may have waiting, held or running: each is kept in memory until it ends,
    /// so a runaway script can't fill the daemon's.
    pub max_jobs_per_user: usize,
    pub budgets: Budgets,
}

/// What a user, or a group's members together, may spend on providers that charge, in a
/// calendar month (UTC): `monthly_budget` of `[quotas.default]`, `[quotas.users.NAME]`,
/// `[quotas.groups.NAME]`, in `[quotas] budget_currency`. Once spent, no attempt goes to a
/// provider that charges for it; attempts already there run on.
#[derive(Clone, Debug, PartialEq)]
pub struct Budgets {
    pub currency: String,
    /// Every user without one of their own; `None`: no budget.
    pub default: Option<f64>,
    pub users: BTreeMap<String, f64>,
    /// A group's name, gid and budget.
    pub groups: Vec<(String, u32, f64)>,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets { currency: "USD".into(), default: None, users: BTreeMap::new(), groups: Vec::new() }
    }
}

impl Budgets {
    pub fn is_empty(&self) -> bool {
        self.default.is_none() && self.users.is_empty() && self.groups.is_empty()
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas { default: Cap::default(), users: BTreeMap::new(), groups: Vec::new(), half_life: Duration::from_secs(24 * 3600), max_jobs_per_user: 50_000, budgets: Budgets::default() }
    }
}

impl Quotas {
    pub fn user_cap(&self, owner: &str) -> Cap {
        self.users.get(owner).copied().unwrap_or(self.default)
    }
}

impl Default for SchedulingRules {
    fn default() -> Self {
        SchedulingRules {
            eligible_gpus: None,
            gpu_left: 0,
            min_gpu: 1,
            max_gpu: 8,
            memory_margin_mib: 0,
            allow_sharing: false,
            memory_save_mode: false,
            default_retries: 0,
            max_retry_before_backoff: 3,
            backoff: Duration::from_secs(300),
            cancel_grace: Duration::from_secs(10),
            log_max_bytes: 64 << 20,
            log_keep: 3,
            burst_max_wait: Duration::from_secs(600),
            burst_max_price: None,
            burst_queues: Vec::new(),
            params: BTreeMap::new(),
            quotas: Quotas::default(),
        }
    }
}

impl SchedulingRules {
    /// Whether the jobs of `queue` burst by rule (`[scheduler] burst_queues`).
    pub fn bursts_queue(&self, queue: &str) -> bool {
        self.burst_queues.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => queue.starts_with(prefix),
            None => queue == p,
        })
    }

    pub fn eligible(&self, index: u32) -> bool {
        self.eligible_gpus.as_ref().is_none_or(|set| set.contains(&index))
    }
}
