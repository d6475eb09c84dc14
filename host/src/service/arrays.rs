//! Arrays as one thing: their summary, and cancel, hold or release of every element at once
//! (Slurm's `scancel 12` of a whole array). Each element's change is the same scheduler request
//! as for one job, checked against the caller's scope.

use super::{Service, ServiceError};
use crate::model::{Counts, JobFilter, JobId, JobState, Principal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An array at a glance.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArrayView {
    /// Its first element's id.
    pub id: JobId,
    pub queue: String,
    /// How many of its elements may run at once.
    pub max_running: u32,
    pub counts: Counts,
    pub elements: Vec<ArrayElement>,
}

#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArrayElement {
    pub index: u32,
    pub id: JobId,
    pub state: JobState,
    /// Its labels: `array_index` and each sweep parameter, with the template's own.
    pub labels: BTreeMap<String, String>,
}

/// What may be done to a whole array.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArrayAction {
    Cancel,
    Hold,
    Release,
}

impl Service {
    pub async fn array(&self, who: &Principal, id: JobId) -> Result<ArrayView, ServiceError> {
        let jobs = self.jobs(who, JobFilter { array: Some(id), ..JobFilter::default() }).await?;
        let first = jobs.first().ok_or_else(|| ServiceError::NotFound(format!("no array {id}")))?;
        let queue = first.queue.clone();
        let max_running = self.queues(None).await?.into_iter().find(|q| q.name == queue).map_or(1, |q| q.parallelism);
        let mut counts = Counts::default();
        let elements = jobs
            .iter()
            .filter_map(|job| {
                counts.add(job.state);
                job.array.map(|place| ArrayElement { index: place.index, id: job.id, state: job.state, labels: job.spec.labels.clone() })
            })
            .collect();
        Ok(ArrayView { id, queue, max_running, counts, elements })
    }

    /// `action` on every element it applies to: cancel the unfinished ones (those waiting first,
    /// so none starts while the running ones are stopped), hold the waiting, release the held.
    pub async fn act_on_array(&self, who: &Principal, id: JobId, action: ArrayAction) -> Result<ArrayView, ServiceError> {
        let view = self.array(who, id).await?;
        let mut targets: Vec<&ArrayElement> = view
            .elements
            .iter()
            .filter(|e| match action {
                ArrayAction::Cancel => !e.state.is_final(),
                ArrayAction::Hold => e.state == JobState::Waiting,
                ArrayAction::Release => e.state == JobState::Held,
            })
            .collect();
        targets.sort_by_key(|e| e.state == JobState::Running);
        for element in targets {
            let done = match action {
                ArrayAction::Cancel => self.cancel(who, element.id).await,
                ArrayAction::Hold => self.hold(who, element.id).await,
                ArrayAction::Release => self.release(who, element.id).await,
            };
            match done {
                // One that changed state since the summary was read is left as it is.
                Err(ServiceError::Scheduler(crate::scheduler::SchedulerError::Conflict { .. })) | Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        self.array(who, id).await
    }
}
