//! How often followers hear of new commits.
//!
//! openraft 0.9 tells each follower every new commit index at once, in an AppendEntries of its
//! own, and the follower then applies it in an apply of its own: with one client that
//! is two more round trips and two more applies per write, all competing for the CPU with
//! the next write. Nothing needs a follower to learn a commit that fast: it only changes what
//! that follower's state machine shows (serializable reads and watches served there), and a
//! linearizable read on a follower makes the leader hurry ([`CommitPacer::hurry`]). So the
//! commit index a follower is sent moves on at most every [`PACE`] — with the next append, or
//! with a heartbeat when it falls due — and an AppendEntries that would tell a follower nothing
//! new (no entries, a commit index it has, and it answered within [`FRESH`]) is answered here
//! instead of being sent. Followers then apply several entries at a time; etcd's followers
//! likewise apply in memory and commit their backend in batches.
//!
//! The pacer is also the one record of a commit index held back because it is not on the
//! leader's own disk yet (`log_store::EarlyAcks::clamp_commit`): a heartbeat carries it as soon
//! as it is ([`CommitPacer::released_by_disk`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use openraft::LogId;
use tokio::time::Instant;

use super::NodeId;

/// Longest time a commit index is held back from a follower.
pub const PACE: Duration = Duration::from_millis(20);
/// An AppendEntries with nothing new is skipped only if the follower answered this recently
/// (well within the election timeout, so its leader stays known).
pub const FRESH: Duration = Duration::from_millis(50);
/// A follower that has not answered for this long (removed, down or cut off) is not waited for
/// by [`CommitPacer::hurry`].
const GONE: Duration = Duration::from_secs(1);

type Commit = Option<LogId<NodeId>>;

fn index(c: &Commit) -> u64 {
    c.map_or(0, |l| l.index)
}

/// What the leader knows of each follower's view of the commit index.
#[derive(Default)]
pub struct CommitPacer {
    peers: Mutex<BTreeMap<NodeId, Peer>>,
    /// A commit index was held back (so [`CommitPacer::due`] has a deadline to watch).
    held: tokio::sync::Notify,
}

#[derive(Default)]
struct Peer {
    /// The highest commit index the follower acknowledged receiving, and when it was sent.
    told: Commit,
    told_at: Option<Instant>,
    /// When the follower last answered an AppendEntries.
    answered: Option<Instant>,
    /// A commit index is held back from the follower until then.
    due: Option<Instant>,
    /// A read on the follower waits for this commit index: send it at once.
    hurry: u64,
    /// A commit index held back because it was not on the leader's disk yet: send it as soon
    /// as it is (see `log_store::EarlyAcks`).
    disk: u64,
}

impl CommitPacer {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Peer>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The commit index to send `target` now, when the leader's is `commit` and it has
    /// `on_disk` of it on its own disk (followers are never told more than that).
    pub fn pace(&self, target: NodeId, commit: Commit, on_disk: Commit) -> Commit {
        let now = Instant::now();
        let mut peers = self.lock();
        let p = peers.entry(target).or_default();
        if index(&on_disk) < index(&commit) {
            p.disk = p.disk.max(index(&commit));
        } else if p.disk <= index(&commit) {
            p.disk = 0;
        }
        let commit = on_disk;
        let told = index(&p.told);
        if index(&commit) <= told || p.hurry > told {
            return commit;
        }
        match p.told_at {
            Some(at) if now < at + PACE => {
                if p.due.is_none() {
                    p.due = Some(at + PACE);
                    self.held.notify_one();
                }
                p.told
            }
            _ => commit,
        }
    }

    /// `target` answered an AppendEntries that was sent at `at` with commit index `commit`.
    pub fn answered(&self, target: NodeId, commit: Commit, at: Instant) {
        let mut peers = self.lock();
        let p = peers.entry(target).or_default();
        p.answered = Some(Instant::now());
        if index(&commit) > index(&p.told) {
            p.told = commit;
            p.told_at = Some(at);
            p.due = None;
        }
    }

    /// Whether an AppendEntries without entries, carrying `commit`, would tell `target` nothing
    /// it does not know.
    pub fn nothing_new(&self, target: NodeId, commit: Commit) -> bool {
        let peers = self.lock();
        peers
            .get(&target)
            .is_some_and(|p| p.told == commit && p.answered.is_some_and(|t| t.elapsed() < FRESH))
    }

    /// A follower reads at commit index `index`: stop holding it back from anyone. Returns
    /// whether some follower has not been told it yet (then a heartbeat should go out).
    pub fn hurry(&self, index_: u64) -> bool {
        let mut behind = false;
        for p in self.lock().values_mut() {
            let alive = p.answered.is_some_and(|t| t.elapsed() < GONE);
            if alive && index(&p.told) < index_ {
                p.hurry = p.hurry.max(index_);
                behind = true;
            }
        }
        behind
    }

    /// The leader's disk caught up (`on_disk` tells up to where): whether a commit index held
    /// back for it may go out now (then a heartbeat should carry it).
    pub fn released_by_disk(&self, on_disk: impl Fn(u64) -> bool) -> bool {
        let mut released = false;
        for p in self.lock().values_mut() {
            if p.disk > 0 && on_disk(p.disk) {
                p.disk = 0;
                released = true;
            }
        }
        released
    }

    /// Wait until a commit index held back from a follower falls due (then a heartbeat should
    /// go out to carry it).
    pub async fn due(&self) {
        loop {
            let next = {
                let mut peers = self.lock();
                let now = Instant::now();
                let mut fired = false;
                for p in peers.values_mut() {
                    if p.due.is_some_and(|d| d <= now) {
                        p.due = None;
                        fired = true;
                    }
                }
                if fired {
                    return;
                }
                peers.values().filter_map(|p| p.due).min()
            };
            match next {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t) => {}
                        _ = self.held.notified() => {}
                    }
                }
                None => self.held.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;

    fn c(i: u64) -> Commit {
        Some(LogId::new(CommittedLeaderId::new(1, 1), i))
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_commit_waits_at_most_the_pace_and_a_read_makes_it_hurry() {
        let p = CommitPacer::default();
        // Never told anything: sent at once.
        assert_eq!(p.pace(2, c(1), c(1)), c(1));
        let t0 = Instant::now();
        p.answered(2, c(1), t0);
        // Within the pace, a newer commit is held back and falls due at the end of it.
        assert_eq!(p.pace(2, c(2), c(2)), c(1));
        assert!(
            p.nothing_new(2, c(1)),
            "a heartbeat would carry nothing new"
        );
        assert!(!p.nothing_new(2, c(2)));
        assert!(
            !p.nothing_new(3, c(1)),
            "an unknown follower is always sent to"
        );
        tokio::time::timeout(PACE * 2, p.due())
            .await
            .expect("the held-back commit falls due");
        assert!(Instant::now() >= t0 + PACE);
        assert_eq!(p.pace(2, c(2), c(2)), c(2), "once due it is sent");
        p.answered(2, c(2), Instant::now());
        // A follower read at index 3 sends it at once.
        assert_eq!(p.pace(2, c(3), c(3)), c(2));
        assert!(p.hurry(3));
        assert_eq!(p.pace(2, c(3), c(3)), c(3));
        p.answered(2, c(3), Instant::now());
        assert!(!p.hurry(3), "nobody is behind any more");
        assert_eq!(p.pace(2, c(4), c(4)), c(3), "and pacing resumes");
        // A follower that has not answered for a while is sent even an empty heartbeat…
        tokio::time::advance(FRESH).await;
        assert!(!p.nothing_new(2, c(3)));
        // … and one gone for good (say, removed) is not waited for by reads.
        tokio::time::advance(GONE).await;
        assert!(!p.hurry(4), "a silent follower does not hold reads up");
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_not_on_the_leaders_disk_goes_out_once_it_is() {
        let p = CommitPacer::default();
        tokio::time::advance(PACE).await;
        // Only entry 1 is on the leader's disk: followers hear of commit 1, and 3 is owed.
        assert_eq!(p.pace(2, c(3), c(1)), c(1));
        assert_eq!(p.pace(3, c(3), c(1)), c(1));
        p.answered(2, c(1), Instant::now() - PACE);
        p.answered(3, c(1), Instant::now() - PACE);
        assert!(
            !p.released_by_disk(|i| i <= 2),
            "entry 3 is not on disk yet"
        );
        // Follower 3 is sent commit 3 on the next append: only 2 is still owed it.
        assert_eq!(p.pace(3, c(3), c(3)), c(3));
        assert!(p.released_by_disk(|i| i <= 3));
        assert!(!p.released_by_disk(|i| i <= 3), "released once");
        assert_eq!(p.pace(2, c(3), c(3)), c(3));
    }
}
