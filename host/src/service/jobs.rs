//! Jobs: submitted, listed and changed (each in one visit to the scheduler, ownership checked
//! there), their logs, the queues, the scheduler's status, and the stream of what changes.

use super::{off_thread, Service, ServiceError};
use crate::executor;
use crate::gpu::GpuSummary;
use crate::auth::Privacy;
use crate::model::{Batch, Event, FieldError, Scope, Job, JobFilter, JobId, Principal, QueueState, QueueStatus, Role, RunId, Status};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A piece of a job's log.
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LogChunk {
    pub job: JobId,
    pub attempt: u32,
    pub offset: u64,
    pub next_offset: u64,
    pub data: String,
    /// The attempt has ended: nothing more will be written.
    pub complete: bool,
}

/// What a followed log yields: more of it, then its end.
pub enum LogUpdate {
    Chunk(LogChunk),
    End(JobId),
}

/// What subscribers to the daemon's changes hear.
pub enum Update {
    Scheduler(Event),
    /// The GPU summaries, when a sample changed what placement sees.
    Gpus(Vec<GpuSummary>),
    /// This subscriber fell behind and missed this many scheduler events.
    Lagged(u64),
    /// A federation node's report was accepted: the node as this master now sees it.
    Node(Box<crate::federation::NodeView>),
}

/// Most bytes one log request returns.
const LOG_CHUNK: usize = 1 << 20;

/// How often a followed log is looked at for more output.
const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// The job whole to whoever `sees` its owner's, else without what it runs.
/// A job as `sees` may see it, with what it has used so far.
fn shown(sees: &Scope, job: Job) -> Job {
    let usage = Some(job.usage_at(crate::model::now_ms()));
    let job = Job { usage, ..job };
    if sees.allows(job.spec.owner.as_deref()) { job } else { job.redact() }
}

impl Service {
    /// Commits a checked batch, owned by its submitter (see [`Service::claim`]).
    pub async fn submit(&self, who: &Principal, mut batch: Batch) -> Result<Vec<JobId>, ServiceError> {
        self.claim(who, &mut batch).await?;
        Ok(self.scheduler.submit(batch).await?)
    }

    /// Whose a batch's jobs are, and as which Unix user they run; never what the body says,
    /// except where the caller could become that user anyway.
    ///
    /// On a system daemon, jobs run as their submitter's Unix user; only root may submit in
    /// another user's name, and those jobs run as that user. An admin without a Unix identity
    /// (seed 001's secret, a web admin) acts as the daemon's user, as every admin's changes to
    /// plugins and configuration do; any other login must be bound to a Unix user.
    ///
    /// Any other daemon runs every job as its own user, so only that user (and admins) submit
    /// there, unless `auth.accounts_may_submit` lets web accounts do so knowingly. An admin may
    /// name another owner there, which only labels the job.
    pub(super) async fn claim(&self, who: &Principal, batch: &mut Batch) -> Result<(), ServiceError> {
        let groups = match who.uid {
            Some(uid) => self.accounts.by_uid(uid).await.map(|a| a.groups).unwrap_or_default(),
            None => Vec::new(),
        };
        if !self.auth.system() {
            if who.role != Role::Admin && who.uid != self.auth.owner().uid && !self.auth.config().accounts_may_submit {
                let owner = &self.auth.owner().name;
                return Err(ServiceError::Forbidden(format!(
                    "jobs on this daemon run as its user {owner}, so only admins submit here (set auth.accounts_may_submit = true to let every account run commands as {owner})"
                )));
            }
            batch.stamp_owner(&who.name, who.role == Role::Admin);
            batch.set_identity(None, groups);
            return Ok(());
        }
        batch.stamp_owner(&who.name, who.uid == Some(0));
        let owners: std::collections::BTreeSet<&str> = batch.jobs().iter().filter_map(|j| j.spec.owner.as_deref()).collect();
        let (run_as, groups) = match (who.uid, owners.into_iter().collect::<Vec<_>>().as_slice()) {
            (Some(0), [owner]) if *owner != who.name => {
                let owner = owner.to_string();
                let account = off_thread(move || crate::unix::Account::by_name(&owner).map_err(|e| FieldError::new("owner", e.to_string()))).await?;
                (Some(account.uid), account.groups)
            }
            (Some(0), [_, _, ..]) => return Err(FieldError::new("owner", "the jobs of one submission run as one user; submit each owner's jobs apart").into()),
            (Some(uid), _) => (Some(uid), groups),
            (None, _) if who.role == Role::Admin => (None, groups),
            (None, _) => return Err(ServiceError::Forbidden(format!("{} is not bound to a Unix user, and jobs here run as their submitter's (an admin binds accounts)", who.name))),
        };
        batch.set_identity(run_as, groups);
        Ok(())
    }

    /// Every job matching `filter`; other users' without what they run unless
    /// `auth.privacy = "open"`.
    pub async fn jobs(&self, who: &Principal, filter: JobFilter) -> Result<Vec<Job>, ServiceError> {
        let sees = self.sees(who);
        Ok(self.scheduler.jobs(filter).await?.into_iter().map(|job| shown(&sees, job)).collect())
    }

    pub async fn job(&self, who: &Principal, id: JobId) -> Result<Job, ServiceError> {
        Ok(shown(&self.sees(who), self.scheduler.job(id, Scope::All).await?))
    }

    /// Whose commands, environments and logs `who` sees in full.
    pub(super) fn sees(&self, who: &Principal) -> Scope {
        match self.auth.config().privacy {
            Privacy::Open => Scope::All,
            Privacy::Closed => who.scope(),
        }
    }

    pub async fn cancel(&self, who: &Principal, id: JobId) -> Result<Job, ServiceError> {
        Ok(self.scheduler.cancel(id, who.scope()).await?)
    }

    pub async fn hold(&self, who: &Principal, id: JobId) -> Result<Job, ServiceError> {
        Ok(self.scheduler.hold(id, who.scope()).await?)
    }

    pub async fn release(&self, who: &Principal, id: JobId) -> Result<Job, ServiceError> {
        Ok(self.scheduler.release(id, who.scope()).await?)
    }

    pub async fn set_priority(&self, who: &Principal, id: JobId, priority: i32) -> Result<Job, ServiceError> {
        Ok(self.scheduler.set_priority(id, who.scope(), priority).await?)
    }

    pub async fn retry(&self, who: &Principal, id: JobId) -> Result<Job, ServiceError> {
        Ok(self.scheduler.retry(id, who.scope()).await?)
    }

    /// The scheduler at a glance; other users' running commands left out as in [`Service::jobs`].
    pub async fn status(&self, who: &Principal) -> Result<Status, ServiceError> {
        let mut status = self.scheduler.status().await?;
        let sees = self.sees(who);
        for job in status.running.iter_mut().filter(|j| !sees.allows(j.owner.as_deref())) {
            job.commands.clear();
        }
        Ok(status)
    }

    /// Queues, those of one run if `run` says so.
    pub async fn queues(&self, run: Option<RunId>) -> Result<Vec<QueueStatus>, ServiceError> {
        let queues = self.scheduler.queues().await?;
        Ok(queues.into_iter().filter(|q| run.is_none_or(|r| q.run == Some(r))).collect())
    }

    pub async fn set_parallelism(&self, queue: String, parallelism: u32) -> Result<QueueState, ServiceError> {
        Ok(self.scheduler.set_parallelism(queue, parallelism).await?)
    }

    /// Reads an attempt's log (the latest attempt unless one is named) from `offset`, if the
    /// caller may see the job.
    pub async fn log(&self, who: &Principal, id: JobId, attempt: Option<u32>, offset: u64) -> Result<LogChunk, ServiceError> {
        let job = self.scheduler.job(id, self.sees(who)).await?;
        let chosen = match attempt {
            Some(n) => job.attempts.iter().find(|a| a.number == n).ok_or(ServiceError::NoAttempt { job: id, attempt: n })?,
            None => match job.attempts.last() {
                Some(a) => a,
                None => return Ok(LogChunk { job: id, attempt: 0, offset, next_offset: offset, data: String::new(), complete: job.state.is_final() }),
            },
        };
        let path = executor::log_path(&chosen.dir);
        let (complete, number) = (chosen.ended_ms.is_some(), chosen.number);
        let (bytes, next_offset) = off_thread(move || executor::read_log(&path, offset, LOG_CHUNK).map_err(|e| ServiceError::File { path, message: e.to_string() })).await?;
        let start = next_offset - bytes.len() as u64;
        Ok(LogChunk { job: id, attempt: number, offset: start, next_offset, data: String::from_utf8_lossy(&bytes).into_owned(), complete })
    }

    /// The log as it grows: a chunk whenever there is more, then its end once the attempt is over
    /// and everything it wrote was sent. Fails at once, before any streaming, for a job the
    /// caller may not see or that does not exist.
    pub async fn follow_log(self: &Arc<Self>, who: &Principal, id: JobId, attempt: Option<u32>, offset: u64) -> Result<impl Stream<Item = LogUpdate> + use<>, ServiceError> {
        self.log(who, id, attempt, offset).await?;
        let start = (self.clone(), who.clone(), attempt, offset);
        Ok(futures_util::stream::unfold(Some(start), move |state| async move {
            let (service, who, mut attempt, mut offset) = state?;
            loop {
                let Ok(chunk) = service.log(&who, id, attempt, offset).await else { return None };
                if chunk.attempt > 0 {
                    // Stay with the attempt being printed, even if a retry starts meanwhile.
                    attempt = Some(chunk.attempt);
                }
                if !chunk.data.is_empty() {
                    offset = chunk.next_offset;
                    return Some((LogUpdate::Chunk(chunk), Some((service, who, attempt, offset))));
                }
                if chunk.complete {
                    return Some((LogUpdate::End(id), None));
                }
                tokio::time::sleep(FOLLOW_INTERVAL).await;
            }
        }))
    }

    /// Job and run changes as the scheduler makes them, and the GPU summaries whenever a sample
    /// changes what placement sees.
    pub fn updates(self: &Arc<Self>) -> impl Stream<Item = Update> + use<> {
        let state = (self.scheduler.subscribe(), self.gpus.subscribe(), self.nodes.subscribe(), self.clone());
        futures_util::stream::unfold(state, |(mut jobs, mut gpus, mut nodes, service)| async move {
            let update = loop {
                tokio::select! {
                    received = jobs.recv() => break match received {
                        Ok(event) => Update::Scheduler(event),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => Update::Lagged(missed),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    },
                    changed = gpus.changed() => {
                        changed.ok()?;
                        break Update::Gpus(service.gpus.summaries());
                    }
                    reported = nodes.recv() => match reported {
                        Ok(name) => {
                            // A node revoked since its report is not news.
                            if let Ok(view) = service.nodes.node(&name) {
                                break Update::Node(Box::new(view));
                            }
                        }
                        // Reports missed by a slow subscriber: each node's next one says it again.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                    },
                }
            };
            Some((update, (jobs, gpus, nodes, service)))
        })
    }
}
