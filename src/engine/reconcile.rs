//! Level-triggered reconciliation: per pool (repository + label set), converge the number of
//! idle runners to the number of jobs that still need one, within capacity.
//!
//! Pure: it is handed a snapshot of the pools and limits and returns what to do with reasons.
//! It does not care why demand changed (webhook, poll, a runner taking another job, a command),
//! so every input and every tick runs the same function.

use crate::engine::event::JobId;

/// An idle runner of a pool (registering or listening, no job yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleRunner {
    pub name: String,
    /// The job it was registered for, if that job still waits.
    pub intended: Option<JobId>,
}

/// Jobs and idle runners that share a repository and a label set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Index of the worker entry serving this label set.
    pub entry: usize,
    /// Jobs that need a runner, oldest first.
    pub waiting: Vec<JobId>,
    pub idle: Vec<IdleRunner>,
    /// Registrations for this pool are backing off after failures.
    pub backing_off: bool,
}

/// Capacity bounds, counted over runners that are alive (idle or busy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_parallel: Option<usize>,
    /// `max` of each worker entry.
    pub entry_max: Vec<Option<usize>>,
    /// Runners alive now, all pools.
    pub in_use: usize,
    /// Runners alive now, per worker entry.
    pub in_use_per_entry: Vec<usize>,
    /// Intake is paused: register nothing new.
    pub paused: bool,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Register a runner in pool `pool` for `job`.
    Register {
        pool: usize,
        job: JobId,
        reason: String,
    },
    /// Remove an idle runner nobody needs.
    Remove { runner: String, reason: String },
    /// Record that an idle runner now stands for `job` (display only; GitHub decides).
    Intend { runner: String, job: JobId },
    /// `job` keeps waiting without a runner, for this reason.
    Wait { job: JobId, reason: String },
}

/// The actions that converge every pool, oldest waiting job first.
pub fn reconcile(pools: &[Pool], limits: &Limits) -> Vec<Action> {
    let mut actions = Vec::new();
    let mut in_use = limits.in_use;
    let mut per_entry = limits.in_use_per_entry.clone();
    let mut order: Vec<usize> = (0..pools.len()).collect();
    order.sort_by_key(|&i| pools[i].waiting.first().copied().unwrap_or(JobId::MAX));
    for p in order {
        let pool = &pools[p];
        // Keep runners on the job they stand for while it waits; hand the others out.
        let mut unserved: Vec<JobId> = pool
            .waiting
            .iter()
            .copied()
            .filter(|j| !pool.idle.iter().any(|r| r.intended == Some(*j)))
            .collect();
        unserved.reverse();
        let mut spare = Vec::new();
        for r in &pool.idle {
            let keeps = r.intended.is_some_and(|j| pool.waiting.contains(&j));
            if keeps {
                continue;
            }
            match unserved.pop() {
                Some(job) => actions.push(Action::Intend {
                    runner: r.name.clone(),
                    job,
                }),
                None => spare.push(r.name.clone()),
            }
        }
        for runner in spare {
            actions.push(Action::Remove {
                runner,
                reason: format!(
                    "{} idle runner(s) for {} waiting job(s) in this label set; this one is surplus",
                    pool.idle.len(),
                    pool.waiting.len()
                ),
            });
        }
        unserved.reverse();
        for job in unserved {
            let entry_max = limits.entry_max.get(pool.entry).copied().flatten();
            let entry_used = per_entry.get(pool.entry).copied().unwrap_or(0);
            let why_not = if limits.paused {
                Some("intake is paused".to_string())
            } else if pool.backing_off {
                Some("runner registration is backing off after a failure".to_string())
            } else if limits.max_parallel.is_some_and(|m| in_use >= m) {
                Some(format!(
                    "max_parallel {} reached",
                    limits.max_parallel.unwrap_or_default()
                ))
            } else if entry_max.is_some_and(|m| entry_used >= m) {
                Some(format!(
                    "worker[{}] max {} reached",
                    pool.entry,
                    entry_max.unwrap_or_default()
                ))
            } else {
                None
            };
            match why_not {
                Some(reason) => actions.push(Action::Wait { job, reason }),
                None => {
                    in_use += 1;
                    if let Some(n) = per_entry.get_mut(pool.entry) {
                        *n += 1;
                    }
                    actions.push(Action::Register {
                        pool: p,
                        job,
                        reason: format!(
                            "{} job(s) wait in this label set with {} idle runner(s)",
                            pool.waiting.len(),
                            pool.idle.len()
                        ),
                    });
                }
            }
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_parallel: Option<usize>) -> Limits {
        Limits {
            max_parallel,
            entry_max: vec![None, Some(1)],
            in_use: 0,
            in_use_per_entry: vec![0, 0],
            paused: false,
        }
    }

    fn idle(name: &str, intended: Option<JobId>) -> IdleRunner {
        IdleRunner {
            name: name.into(),
            intended,
        }
    }

    fn registers(a: &[Action]) -> Vec<JobId> {
        a.iter()
            .filter_map(|x| match x {
                Action::Register { job, .. } => Some(*job),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn registers_one_runner_per_waiting_job() {
        let pools = vec![Pool {
            entry: 0,
            waiting: vec![1, 2],
            idle: vec![idle("r1", Some(1))],
            backing_off: false,
        }];
        let a = reconcile(&pools, &limits(None));
        assert_eq!(registers(&a), vec![2]);
    }

    #[test]
    fn converged_pool_does_nothing() {
        let pools = vec![Pool {
            entry: 0,
            waiting: vec![1],
            idle: vec![idle("r1", Some(1))],
            backing_off: false,
        }];
        assert!(reconcile(&pools, &limits(None)).is_empty());
    }

    #[test]
    fn surplus_idle_runner_is_removed() {
        // Job 1 completed while queued: its runner is surplus.
        let pools = vec![Pool {
            entry: 0,
            waiting: vec![],
            idle: vec![idle("r1", Some(1))],
            backing_off: false,
        }];
        let a = reconcile(&pools, &limits(None));
        assert!(matches!(&a[..], [Action::Remove { runner, .. }] if runner == "r1"));
    }

    #[test]
    fn runner_of_a_taken_job_is_handed_to_the_job_left_behind() {
        // r2 was registered for job 2, but job 2 was taken by r1 (registered for job 1).
        // Job 1 still waits: r2 now stands for it, nothing is registered or removed.
        let pools = vec![Pool {
            entry: 0,
            waiting: vec![1],
            idle: vec![idle("r2", Some(2))],
            backing_off: false,
        }];
        let a = reconcile(&pools, &limits(None));
        assert_eq!(
            a,
            vec![Action::Intend {
                runner: "r2".into(),
                job: 1
            }]
        );
    }

    #[test]
    fn capacity_bounds_registrations_and_says_why() {
        let pools = vec![
            Pool {
                entry: 0,
                waiting: vec![1, 2, 3],
                idle: vec![],
                backing_off: false,
            },
            Pool {
                entry: 1,
                waiting: vec![4, 5],
                idle: vec![],
                backing_off: false,
            },
        ];
        let a = reconcile(&pools, &limits(Some(3)));
        assert_eq!(registers(&a), vec![1, 2, 3]);
        assert!(a.iter().any(
            |x| matches!(x, Action::Wait { job: 4, reason } if reason.contains("max_parallel 3"))
        ));
        let a = reconcile(&pools, &limits(None));
        assert_eq!(registers(&a), vec![1, 2, 3, 4]);
        assert!(a.iter().any(
            |x| matches!(x, Action::Wait { job: 5, reason } if reason.contains("worker[1] max 1"))
        ));
    }

    #[test]
    fn paused_and_backing_off_register_nothing() {
        let pools = vec![Pool {
            entry: 0,
            waiting: vec![1],
            idle: vec![],
            backing_off: true,
        }];
        let a = reconcile(&pools, &limits(None));
        assert!(matches!(&a[..], [Action::Wait { reason, .. }] if reason.contains("backing off")));
        let mut l = limits(None);
        l.paused = true;
        let mut p = pools.clone();
        p[0].backing_off = false;
        let a = reconcile(&p, &l);
        assert!(matches!(&a[..], [Action::Wait { reason, .. }] if reason.contains("paused")));
    }
}
