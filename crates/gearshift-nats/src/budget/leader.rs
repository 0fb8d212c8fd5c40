//! The leader's duties for one term: follow the members, divide the limit,
//! step the control law once per control window, write the grant.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv::{CreateErrorKind, Operation, Store, UpdateErrorKind};
use gearshift::tuner::Tuner;
use tokio::task::JoinHandle;

use super::fair::{fair_shares, phased};
use super::record::{GrantRecord, GrantShare, MemberRecord, Totals, cluster_window};
use super::watch::{Members, follow};
use super::{ClusterConfig, Keys};

/// Renewals a limit change takes to act and be measured: the grant is
/// written (one), read (two), applied at the member's next window (three),
/// and its calls reach the leader with the next put (four). A shorter
/// control window would judge a move before it acted, and move again.
const LOOP_RENEWALS: u32 = 4;

/// One term of leadership.
pub(crate) struct Leader {
    pub term: u64,
    /// The leader key's revision this process wrote last.
    pub revision: u64,
    /// When the leader key was last renewed.
    pub renewed_at: Instant,
    grant_revision: Option<u64>,
    /// Each member's share in the last grant written: it may take it any
    /// moment, so it counts as held.
    granted: HashMap<String, u64>,
    limit: u64,
    steps: u64,
    tuner: Box<dyn Tuner>,
    last_step: Instant,
    /// After a step that moved the limit, until the next window starts.
    settling: Option<Settling>,
    /// Each member's totals at the last control step (or first sighting).
    base: HashMap<String, (u64, Totals)>,
    members: Members,
    watch: JoinHandle<()>,
    watch_started: Instant,
}

/// The wait after a move. The next window starts once every member holds
/// its share of the new limit and has put its record since the last of
/// them took it (or a lease has passed): a member's calls until then met
/// other members still over their new shares.
#[derive(Debug)]
struct Settling {
    step: u64,
    since: Instant,
    /// Each member's record revision when the last of them took the new
    /// share.
    held: Option<HashMap<String, u64>>,
    /// Whether the move raised the limit: then what the calls met while
    /// it took hold (refusals above all) was caused by the new, higher
    /// limit and counts in the next window; after a cut it was caused by
    /// the old one and does not.
    grew: bool,
}

/// What a leader tick found.
pub(crate) enum Led {
    /// The grant is written; the leader goes on.
    Granted,
    /// The grant could not be written this time; try again next renewal.
    Retry,
    /// Another process wrote the grant: it leads now.
    Deposed,
}

impl Leader {
    /// Starts a term: reads the last grant (its limit carries over) and
    /// follows the members' records.
    pub async fn start(
        kv: &Store,
        keys: &Keys,
        cfg: &ClusterConfig,
        term: u64,
        revision: u64,
    ) -> Leader {
        let read = kv.entry(keys.grant.clone());
        let previous = tokio::time::timeout(cfg.op_timeout(), read)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let last = previous
            .as_ref()
            .filter(|e| e.operation == Operation::Put)
            .and_then(|e| serde_json::from_slice::<GrantRecord>(&e.value).ok());
        let grant_revision = previous.as_ref().map(|e| e.revision);
        let limit = last.as_ref().map_or(cfg.initial_limit as u64, |g| g.limit);
        let granted = last.map_or_else(HashMap::new, |g| {
            g.shares.into_iter().map(|(id, s)| (id, s.calls)).collect()
        });
        let members = Members::default();
        let now = Instant::now();
        Leader {
            term,
            revision,
            renewed_at: now,
            grant_revision,
            granted,
            limit: limit.clamp(1, cfg.max_limit as u64),
            steps: 0,
            tuner: (cfg.tuner)(),
            last_step: now,
            settling: None,
            base: HashMap::new(),
            watch: follow(
                kv.clone(),
                keys.members.clone(),
                Arc::clone(&members),
                cfg.renewal,
            ),
            watch_started: now,
            members,
        }
    }

    /// One renewal: drop silent members, step the law if a control window
    /// has passed, divide the limit, write the grant. `own` is this
    /// process's id, `own_put` when its record was last put.
    pub async fn tick(
        &mut self,
        kv: &Store,
        keys: &Keys,
        cfg: &ClusterConfig,
        own: &str,
        own_put: Option<Instant>,
    ) -> Led {
        let live = self.live(cfg.lease);
        self.restart_stalled_watch(kv, keys, cfg, own, own_put, &live);
        self.track(&live);
        self.settle(&live, cfg);
        let window = self
            .tuner
            .window()
            .clamp(cfg.renewal * LOOP_RENEWALS, Duration::from_secs(60));
        let due = self.settling.is_none() && self.last_step.elapsed() >= window;
        if due && !live.is_empty() {
            self.step(&live, cfg);
        }
        let grant = self.grant(&live);
        self.granted = grant
            .shares
            .iter()
            .map(|(id, s)| (id.clone(), s.calls))
            .collect();
        self.write(kv, keys, cfg, &grant).await
    }

    /// Keeps a baseline of totals per live member.
    fn track(&mut self, live: &BTreeMap<String, MemberRecord>) {
        self.base.retain(|id, _| live.contains_key(id));
        for (id, m) in live {
            match self.base.get(id) {
                // First sight: count from now.
                None => {
                    self.base.insert(id.clone(), (m.incarnation, m.totals));
                }
                // Restarted under the same id: its totals start from zero.
                Some((inc, _)) if *inc != m.incarnation => {
                    self.base
                        .insert(id.clone(), (m.incarnation, Totals::default()));
                }
                Some(_) => {}
            }
        }
    }

    /// After a move: once every member holds its new share and has put its
    /// record since (or a lease has passed), starts the next window there
    /// (after a raise, the window keeps what the calls met meanwhile).
    fn settle(&mut self, live: &BTreeMap<String, MemberRecord>, cfg: &ClusterConfig) {
        let Some(settling) = &mut self.settling else {
            return;
        };
        let late = settling.since.elapsed() > cfg.lease;
        let held = match &settling.held {
            None => {
                let step = settling.step;
                if live
                    .values()
                    .all(|m| m.applied.0 == self.term && m.applied.1 >= step)
                {
                    let revisions = live.iter().map(|(id, m)| (id.clone(), m.revision));
                    settling.held = Some(revisions.collect());
                }
                false
            }
            Some(revisions) => live
                .iter()
                .all(|(id, m)| revisions.get(id).is_none_or(|&r| m.revision > r)),
        };
        if held || late {
            if !settling.grew {
                for (id, m) in live {
                    self.base.insert(id.clone(), (m.incarnation, m.totals));
                }
                self.last_step = Instant::now();
            }
            self.settling = None;
        }
    }

    /// The limit divided among the live members, fair by demand.
    fn grant(&self, live: &BTreeMap<String, MemberRecord>) -> GrantRecord {
        let demands: Vec<u64> = live.values().map(|m| m.demand).collect();
        let holding: Vec<u64> = live
            .iter()
            .map(|(id, m)| {
                let granted = self.granted.get(id).copied().unwrap_or(0);
                m.holding.max(granted).max(1)
            })
            .collect();
        let shares = phased(self.limit, &fair_shares(self.limit, &demands), &holding);
        let shares = live.iter().zip(shares).map(|((id, m), calls)| {
            let share = GrantShare {
                incarnation: m.incarnation,
                calls,
            };
            (id.clone(), share)
        });
        GrantRecord {
            term: self.term,
            limit: self.limit,
            steps: self.steps,
            shares: shares.collect(),
        }
    }

    /// Writes the grant by compare-and-set on its last revision. A
    /// mismatch is a deposition unless the grant there is this term's own
    /// (a write that timed out here and landed later).
    async fn write(
        &mut self,
        kv: &Store,
        keys: &Keys,
        cfg: &ClusterConfig,
        grant: &GrantRecord,
    ) -> Led {
        let Ok(value) = serde_json::to_vec(grant) else {
            return Led::Retry;
        };
        let write = async {
            match self.grant_revision {
                Some(rev) => kv
                    .update(&keys.grant, value.into(), rev)
                    .await
                    .map_err(|e| e.kind() == UpdateErrorKind::WrongLastRevision),
                None => kv
                    .create(&keys.grant, value.into())
                    .await
                    .map_err(|e| e.kind() == CreateErrorKind::AlreadyExists),
            }
        };
        match tokio::time::timeout(cfg.op_timeout(), write).await {
            Ok(Ok(rev)) => {
                self.grant_revision = Some(rev);
                Led::Granted
            }
            Ok(Err(true)) => {
                let read = tokio::time::timeout(cfg.op_timeout(), kv.entry(keys.grant.clone()));
                match read.await {
                    Ok(Ok(Some(e))) if e.operation == Operation::Put => {
                        let there = serde_json::from_slice::<GrantRecord>(&e.value);
                        if there.is_ok_and(|g| g.term == self.term) {
                            self.grant_revision = Some(e.revision);
                            Led::Retry
                        } else {
                            Led::Deposed
                        }
                    }
                    _ => Led::Retry,
                }
            }
            Ok(Err(false)) | Err(_) => Led::Retry,
        }
    }

    /// One control step for the whole cluster, from every live member's
    /// calls since the last step.
    fn step(&mut self, live: &BTreeMap<String, MemberRecord>, cfg: &ClusterConfig) {
        let mut sum = Totals::default();
        let mut gauges = Vec::with_capacity(live.len());
        for (id, m) in live {
            if let Some((_, base)) = self.base.get_mut(id) {
                sum = sum.plus(&m.totals.since(base));
                *base = m.totals;
            }
            gauges.push(m.gauges);
        }
        let elapsed = self.last_step.elapsed();
        self.last_step = Instant::now();
        let window = cluster_window(elapsed, self.limit, &sum, &gauges);
        let decision = self.tuner.decide(&window);
        self.steps += 1;
        if let Some(p) = decision.api_permits {
            let limit = (p as u64).clamp(1, cfg.max_limit as u64);
            if limit != self.limit {
                tracing::info!(
                    term = self.term,
                    limit,
                    was = self.limit,
                    members = live.len(),
                    throttled = window.throttled,
                    io_rate = window.io_rate(),
                    reason = %decision.reason,
                    "cluster limit"
                );
                self.settling = Some(Settling {
                    step: self.steps,
                    since: Instant::now(),
                    held: None,
                    grew: limit > self.limit,
                });
                self.limit = limit;
            }
        }
    }

    /// Members whose record changed within the lease, by id.
    fn live(&self, lease: Duration) -> BTreeMap<String, MemberRecord> {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members
            .iter()
            .filter(|(_, s)| s.changed_at.elapsed() <= lease)
            .map(|(k, s)| {
                let mut record = s.record.clone();
                record.revision = s.revision;
                (k.clone(), record)
            })
            .collect()
    }

    /// A watch can stall without an error (a server restart under an
    /// ordered consumer); this process's own record, put every renewal,
    /// must show up in it, else the watch starts over.
    fn restart_stalled_watch(
        &mut self,
        kv: &Store,
        keys: &Keys,
        cfg: &ClusterConfig,
        own: &str,
        own_put: Option<Instant>,
        live: &BTreeMap<String, MemberRecord>,
    ) {
        let put_recently = own_put.is_some_and(|t| t.elapsed() < cfg.renewal * 2);
        let settled = self.watch_started.elapsed() > cfg.lease / 2;
        if (self.watch.is_finished() || (!live.contains_key(own) && put_recently)) && settled {
            tracing::debug!(term = self.term, "member watch starts over");
            self.watch.abort();
            self.watch = follow(
                kv.clone(),
                keys.members.clone(),
                Arc::clone(&self.members),
                cfg.renewal,
            );
            self.watch_started = Instant::now();
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.watch.abort();
    }
}
