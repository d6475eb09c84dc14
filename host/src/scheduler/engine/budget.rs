//! Monthly budgets: what a job's owner, and each budgeted group of theirs, spent this calendar
//! month (UTC) on providers that charge, from the costs of their remote attempts (those still
//! running counted to now). The tightest of them goes with the attempt, and a provider's price
//! is checked against it before anything is rented.

use super::Engine;
use crate::model::{Job, JobState};
use crate::scheduler::remote::BudgetLeft;

impl Engine {
    /// The budget with the least left among the job's owner's and their groups', if any applies.
    pub(super) fn budget_left(&self, job: &Job) -> Option<BudgetLeft> {
        let budgets = &self.rules().quotas.budgets;
        if budgets.is_empty() {
            return None;
        }
        let now = self.now();
        let month = crate::model::time::month_start_ms(now);
        let spent_by = |belongs: &dyn Fn(&Job) -> bool| -> f64 {
            self.jobs
                .values()
                .filter(|j| belongs(j))
                .flat_map(|j| j.attempts.iter().map(move |a| (j.state, a)))
                .filter(|(_, a)| a.started_ms >= month)
                .filter_map(|(state, a)| {
                    let mut cost = a.remote.as_ref()?.cost.clone()?;
                    if a.ended_ms.is_none() && state == JobState::Running {
                        cost.count_to(now);
                    }
                    (cost.currency == budgets.currency).then_some(cost.total)
                })
                .sum()
        };
        let owner = job.spec.owner.clone().unwrap_or_default();
        let mut candidates = Vec::new();
        if let Some(limit) = budgets.users.get(&owner).copied().or(budgets.default) {
            candidates.push(BudgetLeft { whose: owner.clone(), limit, spent: spent_by(&|j| j.spec.owner.as_deref() == Some(owner.as_str())), currency: budgets.currency.clone() });
        }
        for (name, gid, limit) in budgets.groups.iter().filter(|(_, gid, _)| job.groups.contains(gid)) {
            candidates.push(BudgetLeft { whose: format!("group {name}"), limit: *limit, spent: spent_by(&|j| j.groups.contains(gid)), currency: budgets.currency.clone() });
        }
        candidates.into_iter().min_by(|a, b| (a.limit - a.spent).total_cmp(&(b.limit - b.spent)))
    }
}
