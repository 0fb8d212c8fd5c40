//! The background task of one process: every renewal it puts its record,
//! takes part in the election, leads when elected, and reads its grant.

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::kv::{Operation, Store, UpdateErrorKind};
use tokio::sync::oneshot;

use super::leader::{Leader, Led};
use super::local::{Held, Local};
use super::record::{GrantRecord, LeaderRecord, MemberRecord};
use super::{ClusterConfig, Keys};

/// One process's part in the protocol.
pub(crate) struct Member {
    pub kv: Store,
    pub keys: Keys,
    pub cfg: ClusterConfig,
    pub incarnation: u64,
    pub local: Arc<Local>,
    /// When this incarnation's first successful put started.
    first_put: Option<Instant>,
    /// When the latest successful put ended.
    last_put: Option<Instant>,
    /// The grant's revision at the last read, and when that read started.
    grant_read: Option<(u64, Instant)>,
    /// The leader key's revision, and when this process first saw it.
    leader_seen: Option<(u64, Instant)>,
    leading: Option<Leader>,
}

impl Member {
    pub fn new(
        kv: Store,
        keys: Keys,
        cfg: ClusterConfig,
        incarnation: u64,
        local: Arc<Local>,
    ) -> Self {
        Member {
            kv,
            keys,
            cfg,
            incarnation,
            local,
            first_put: None,
            last_put: None,
            grant_read: None,
            leader_seen: None,
            leading: None,
        }
    }

    /// Runs until `stop` fires (then leaves: deletes its records) or the
    /// task is aborted (then the others notice after a lease).
    pub async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            let started = Instant::now();
            let listed = self.tick().await;
            // Not yet in the grant: look again soon, so a new process gets
            // its first share right after the leader's next renewal.
            let pause = if listed {
                self.cfg.renewal
            } else {
                self.cfg.renewal / 4
            };
            tokio::select! {
                _ = &mut stop => break,
                () = tokio::time::sleep_until((started + pause).into()) => {}
            }
        }
        self.leave().await;
    }

    async fn tick(&mut self) -> bool {
        self.put().await;
        self.elect().await;
        self.lead().await;
        self.read_grant().await
    }

    /// Puts this process's record: demand, totals, gauges.
    async fn put(&mut self) {
        let record = {
            let mut s = self.local.lock();
            let r = MemberRecord {
                incarnation: self.incarnation,
                demand: Local::take_demand(&mut s),
                totals: s.totals,
                gauges: s.gauges,
                applied: s.applied,
                holding: self.local.holding(&s),
                revision: 0,
            };
            s.gauges.reset_extremes();
            r
        };
        let Ok(value) = serde_json::to_vec(&record) else {
            return;
        };
        let start = Instant::now();
        match tokio::time::timeout(
            self.cfg.op_timeout(),
            self.kv.put(&self.keys.member, value.into()),
        )
        .await
        {
            Ok(Ok(_)) => {
                self.first_put.get_or_insert(start);
                self.last_put = Some(Instant::now());
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "cluster budget: put failed"),
            Err(_) => tracing::debug!("cluster budget: put timed out"),
        }
    }

    /// Renews the leader key when leading; otherwise takes it when it is
    /// free or when its revision has not moved for a lease (by this
    /// process's clock).
    async fn elect(&mut self) {
        let timeout = self.cfg.op_timeout();
        let me: bytes::Bytes = serde_json::to_vec(&LeaderRecord {
            id: self.cfg.process_id.clone(),
        })
        .unwrap_or_default()
        .into();
        if let Some(l) = &mut self.leading {
            let renew = self.kv.update(&self.keys.leader, me.clone(), l.revision);
            match tokio::time::timeout(timeout, renew).await {
                Ok(Ok(rev)) => {
                    l.revision = rev;
                    l.renewed_at = Instant::now();
                }
                Ok(Err(e)) if e.kind() == UpdateErrorKind::WrongLastRevision => {
                    // Unless the key holds this process's own renewal, one
                    // that timed out here and landed later.
                    let read = self.kv.entry(self.keys.leader.clone());
                    let own = match tokio::time::timeout(timeout, read).await {
                        Ok(Ok(Some(e))) if e.operation == Operation::Put => {
                            serde_json::from_slice::<LeaderRecord>(&e.value)
                                .is_ok_and(|r| r.id == self.cfg.process_id)
                                .then_some(e.revision)
                        }
                        _ => None,
                    };
                    match (own, &mut self.leading) {
                        (Some(rev), Some(l)) => l.revision = rev,
                        _ => self.step_down("another process took the leader key"),
                    }
                }
                _ if l.renewed_at.elapsed() > self.cfg.lease => {
                    self.step_down("could not renew the leader key for a lease");
                }
                _ => {}
            }
            return;
        }
        let start = Instant::now();
        let create = async {
            let take = self.kv.create(&self.keys.leader, me.clone());
            tokio::time::timeout(timeout, take)
                .await
                .ok()
                .and_then(Result::ok)
        };
        let won = match tokio::time::timeout(timeout, self.kv.entry(self.keys.leader.clone())).await
        {
            // Free (never taken, or given up by a leaving leader).
            Ok(Ok(None)) => create.await,
            Ok(Ok(Some(e))) if e.operation != Operation::Put => create.await,
            Ok(Ok(Some(e))) => match self.leader_seen {
                Some((rev, since)) if rev == e.revision && since.elapsed() > self.cfg.lease => {
                    let take = self.kv.update(&self.keys.leader, me.clone(), e.revision);
                    tokio::time::timeout(timeout, take)
                        .await
                        .ok()
                        .and_then(Result::ok)
                }
                Some((rev, _)) if rev == e.revision => None,
                _ => {
                    self.leader_seen = Some((e.revision, start));
                    None
                }
            },
            _ => None,
        };
        if let Some(rev) = won {
            // The winning revision is the term: stream sequences only grow.
            tracing::info!(api = %self.keys.api, process = %self.cfg.process_id, term = rev, "cluster budget: leading");
            let leader = Leader::start(&self.kv, &self.keys, &self.cfg, rev, rev).await;
            self.leading = Some(leader);
            self.leader_seen = None;
            self.local.lock().leading = true;
        }
    }

    async fn lead(&mut self) {
        let Some(l) = &mut self.leading else { return };
        let led = l
            .tick(
                &self.kv,
                &self.keys,
                &self.cfg,
                &self.cfg.process_id,
                self.last_put,
            )
            .await;
        if let Led::Deposed = led {
            self.step_down("another process wrote the grant");
        }
    }

    fn step_down(&mut self, why: &str) {
        tracing::info!(api = %self.keys.api, process = %self.cfg.process_id, why, "cluster budget: no longer leading");
        self.leading = None;
        self.local.lock().leading = false;
    }

    /// Reads the grant; returns whether it lists this incarnation.
    ///
    /// A grant is known fresh from the start of the previous read when its
    /// revision moved since, and from this incarnation's first put when it
    /// names this incarnation: times on this process's clock only.
    async fn read_grant(&mut self) -> bool {
        let start = Instant::now();
        let read = self.kv.entry(self.keys.grant.clone());
        let Ok(Ok(Some(entry))) = tokio::time::timeout(self.cfg.op_timeout(), read).await else {
            return false;
        };
        if entry.operation != Operation::Put {
            return false;
        }
        let previous = self.grant_read.replace((entry.revision, start));
        let Ok(grant) = serde_json::from_slice::<GrantRecord>(&entry.value) else {
            return false;
        };
        let mine = grant
            .shares
            .get(&self.cfg.process_id)
            .filter(|s| s.incarnation == self.incarnation)
            .map(|s| s.calls);
        let moved = previous.and_then(|(rev, at)| (rev != entry.revision).then_some(at));
        let named = mine.and(self.first_put);
        let mut s = self.local.lock();
        let known = s.grant.map(|g| g.fresh_at);
        if let Some(fresh_at) = [moved, named, known].into_iter().flatten().max() {
            s.grant = Some(Held {
                share: mine,
                limit: grant.limit,
                term: grant.term,
                steps: grant.steps,
                fresh_at,
            });
        }
        s.leader_term = Some(grant.term);
        s.steps = grant.steps;
        mine.is_some()
    }

    /// Deletes this process's records so the others need not wait a lease.
    async fn leave(&mut self) {
        let timeout = self.cfg.op_timeout();
        let _ = tokio::time::timeout(timeout, self.kv.delete(&self.keys.member)).await;
        if let Some(l) = self.leading.take() {
            let rev = l.revision;
            let gone = self.kv.delete_expect_revision(&self.keys.leader, Some(rev));
            let _ = tokio::time::timeout(timeout, gone).await;
        }
        self.local.lock().leading = false;
    }
}
