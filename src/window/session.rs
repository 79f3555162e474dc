//! Per-key session bookkeeping (spec §5.2): assignment, merge detection and closing.
//!
//! Sessions are kept in creation order (= ascending id). Their bounds are the first and last
//! row timestamps, inclusive; the gap is not part of the window.

use smallvec::SmallVec;

/// One live session of a key.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Session {
    pub id: i64,
    pub first: i64,
    pub last: i64,
    /// Ids merged directly into this session (not transitive).
    pub merged: Vec<i64>,
    /// Aggregation state slot.
    pub slot: u32,
}

/// A merge caused by an assignment: the original's state folds into the target's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Merge {
    pub original_slot: u32,
    pub target_slot: u32,
    pub target_id: i64,
}

/// Marks a session merged away during a sweep (slots are dense indices, never `u32::MAX`).
const REMOVED: u32 = u32::MAX;

/// A key's live sessions in creation order. The first two live in the list itself, in the
/// shard's array of keys: with many keys, a list on the heap cost a dependent cache miss per
/// row (the list, then its sessions). Two, not one: a key whose rows come a little more than
/// the gap apart opens its next session before the watermark closes the last one.
pub(crate) type LiveSessions = SmallVec<[Session; 2]>;

/// The session windower state of one key: two whole cache lines (see [`LiveSessions`]).
#[derive(Clone, Debug, Default)]
#[repr(align(64))]
pub(crate) struct Sessions {
    /// Live sessions in creation order.
    pub live: LiveSessions,
    /// Ids are never reused, so this survives when no session is live (spec §14.2).
    pub next_id: i64,
}

/// Whether session `s` is due at watermark `w` (spec §7.1: `last < w − gap`): every session
/// at `+∞`, none at `−∞` or where `w − gap` overflows.
#[inline]
fn due(s: &Session, w: i64, gap: i64) -> bool {
    w != crate::time::NEG_INF && (w == crate::time::POS_INF || w.checked_sub(gap).is_some_and(|limit| s.last < limit))
}

/// `a − b <= gap` without overflow.
#[inline]
fn within(a: i64, b: i64, gap: i64) -> bool {
    i128::from(a) - i128::from(b) <= i128::from(gap)
}

const _: () = assert!(std::mem::size_of::<Sessions>() == 128);

impl Sessions {
    /// Assigns `ts` to a session (creating one when none matches) and returns the assigned
    /// session's `(id, slot, first, last)` right after the assignment (before merges). Merges the assignment causes are appended to `merges`, in the
    /// order they must be applied, after the row has been applied to the assigned slot.
    #[inline]
    pub fn assign(
        &mut self,
        ts: i64,
        gap: i64,
        new_slot: impl FnMut() -> u32,
        merges: &mut Vec<Merge>,
    ) -> (i64, u32, i64, i64) {
        self.assign_with(ts, gap, new_slot, merges, Self::detect_merges)
    }

    /// [`assign`](Self::assign) with the merge sweep `sweep(self, extended, gap, merges)`.
    #[inline]
    fn assign_with(
        &mut self,
        ts: i64,
        gap: i64,
        mut new_slot: impl FnMut() -> u32,
        merges: &mut Vec<Merge>,
        sweep: impl FnOnce(&mut Self, usize, i64, &mut Vec<Merge>),
    ) -> (i64, u32, i64, i64) {
        for i in 0..self.live.len() {
            let s = &mut self.live[i];
            if s.first <= ts && ts <= s.last {
                return (s.id, s.slot, s.first, s.last);
            }
            let extended = if s.first > ts && within(s.first, ts, gap) {
                s.first = ts;
                true
            } else if ts > s.last && within(ts, s.last, gap) {
                s.last = ts;
                true
            } else {
                false
            };
            if extended {
                let assigned = (s.id, s.slot, s.first, s.last);
                sweep(self, i, gap, merges);
                return assigned;
            }
        }
        let slot = new_slot();
        let id = self.next_id;
        self.next_id += 1;
        self.live.push(Session { id, first: ts, last: ts, merged: Vec::new(), slot });
        (id, slot, ts, ts)
    }

    /// Bounds of live session `id`.
    pub fn bounds(&self, id: i64) -> Option<(i64, i64)> {
        self.live.iter().find(|s| s.id == id).map(|s| (s.first, s.last))
    }

    /// The sweep of spec §5.2.2 after session `extended` grew: sessions sorted by `first`
    /// (stable), each merged into the current one when it starts within `gap` of the current
    /// one's end.
    fn detect_merges(&mut self, extended: usize, gap: i64, merges: &mut Vec<Merge>) {
        if self.live.len() < 2 {
            return;
        }
        // The sweep visits sessions by `first`, ties in creation order. Sessions are usually
        // created in time order already; then the order is the identity and needs no sort.
        let sorted = self.live.windows(2).all(|w| w[0].first <= w[1].first);
        if sorted {
            self.sweep_sorted_from(extended, gap, merges);
        } else {
            self.sweep_all(sorted, gap, merges);
        }
    }

    /// The sweep over all sessions (`sorted`: already in order of `first`).
    fn sweep_all(&mut self, sorted: bool, gap: i64, merges: &mut Vec<Merge>) {
        let n = self.live.len();
        if n < 2 {
            return;
        }
        let mut order: Vec<usize> = Vec::new();
        if !sorted {
            order.extend(0..n);
            order.sort_by_key(|&i| self.live[i].first);
        }
        let at = |j: usize| if sorted { j } else { order[j] };
        let mut any_removed = false;
        let mut current = at(0);
        for j in 1..n {
            let next = at(j);
            if within(self.live[next].first, self.live[current].last, gap) {
                self.merge_into(current, next, merges);
                any_removed = true;
            } else {
                current = next;
            }
        }
        if any_removed {
            self.live.retain(|s| s.slot != REMOVED);
        }
    }

    /// The sweep over sessions already in order of `first`, from the one before `extended`.
    ///
    /// Every assignment ends with no two neighbours (in sweep order) within `gap` of each
    /// other: a new session is within `gap` of none, and each extension is followed by a
    /// sweep. So only the extended session can merge now — into the one before it, or with
    /// those after it — and the sweep can start just before it and stop at the first
    /// non-merging step past it: the same merges, in the same order, as a sweep of all.
    fn sweep_sorted_from(&mut self, extended: usize, gap: i64, merges: &mut Vec<Merge>) {
        let start = extended.saturating_sub(1);
        let mut current = start;
        let mut any_removed = false;
        for next in start + 1..self.live.len() {
            if within(self.live[next].first, self.live[current].last, gap) {
                self.merge_into(current, next, merges);
                any_removed = true;
            } else if next > extended {
                break;
            } else {
                current = next;
            }
        }
        if any_removed {
            self.live.retain(|s| s.slot != REMOVED);
        }
    }

    /// Merges session `next` into `current` (both positions in `live`) and records the merge.
    /// The merged-away session is marked by an impossible slot; the sweep drops it at the end.
    fn merge_into(&mut self, current: usize, next: usize, merges: &mut Vec<Merge>) {
        let (next_last, next_id, next_slot) = (self.live[next].last, self.live[next].id, self.live[next].slot);
        let cur = &mut self.live[current];
        cur.last = cur.last.max(next_last);
        cur.merged.push(next_id);
        merges.push(Merge { original_slot: next_slot, target_slot: cur.slot, target_id: cur.id });
        self.live[next].slot = REMOVED;
    }

    /// Whether any live session is due at `w` (what [`close`](Self::close) would close).
    pub fn any_due(&self, w: i64, gap: i64) -> bool {
        self.live.iter().any(|s| due(s, w, gap))
    }

    /// The live sessions due at `w`, seen from the oldest: how many are due before the first
    /// that is not (what [`close_prefix`](Self::close_prefix) closes), and whether one due
    /// comes after that (what only [`close`](Self::close) closes). One pass; usually one
    /// session is live.
    #[inline]
    pub fn due_prefix(&self, w: i64, gap: i64) -> (usize, bool) {
        let live = self.live.as_slice();
        let prefix = live.iter().take_while(|s| due(s, w, gap)).count();
        let behind = live.get(prefix + 1..).is_some_and(|rest| rest.iter().any(|s| due(s, w, gap)));
        (prefix, behind)
    }

    /// Moves the `prefix` oldest live sessions to `out`, in creation order: the first ones
    /// `close` would move, when [`due_prefix`](Self::due_prefix) counted them. Closing them
    /// before the settle after the rows keeps creation order: every session left was created
    /// later.
    pub fn close_prefix(&mut self, prefix: usize, out: &mut Vec<Session>) {
        out.extend(self.live.drain(..prefix));
    }

    /// Removes and returns (in creation order) every session with `last < w − gap`.
    pub fn close(&mut self, w: i64, gap: i64, out: &mut Vec<Session>) {
        if self.any_due(w, gap) {
            out.extend(self.live.drain_filter(|s| due(s, w, gap)));
        }
    }
}

#[cfg(test)]
mod tests {
    use smallvec::smallvec;

    use super::*;

    const GAP: i64 = 10;

    fn run(ts: &[i64]) -> (Sessions, Vec<Merge>) {
        let mut s = Sessions::default();
        let mut next = 0;
        let mut merges = Vec::new();
        for &t in ts {
            s.assign(
                t,
                GAP,
                || {
                    next += 1;
                    next - 1
                },
                &mut merges,
            );
        }
        (s, merges)
    }

    fn bounds(s: &Sessions) -> Vec<(i64, i64, i64, Vec<i64>)> {
        s.live.iter().map(|x| (x.id, x.first, x.last, x.merged.clone())).collect()
    }

    // bytewax's SessionWindower test cases (spec §15), times in seconds.
    #[test]
    fn initial_and_extensions() {
        assert_eq!(bounds(&run(&[0]).0), vec![(0, 0, 0, vec![])]);
        assert_eq!(bounds(&run(&[0, 5]).0), vec![(0, 0, 5, vec![])]);
        assert_eq!(bounds(&run(&[0, 10]).0), vec![(0, 0, 10, vec![])]);
        assert_eq!(bounds(&run(&[0, -5]).0), vec![(0, -5, 0, vec![])]);
        assert_eq!(bounds(&run(&[0, -10]).0), vec![(0, -10, 0, vec![])]);
        assert_eq!(bounds(&run(&[0, 10, 5]).0), vec![(0, 0, 10, vec![])]);
        assert_eq!(bounds(&run(&[0, 11]).0), vec![(0, 0, 0, vec![]), (1, 11, 11, vec![])]);
    }

    #[test]
    fn extend_merge() {
        let (s, merges) = run(&[0, 20, 10]);
        assert_eq!(bounds(&s), vec![(0, 0, 20, vec![1])]);
        assert_eq!(merges, vec![Merge { original_slot: 1, target_slot: 0, target_id: 0 }]);
    }

    /// bytewax's `find_merges_no_yes_no`: a sweep over sessions at 0, 20, 25, 40 merges only
    /// 2 into 1.
    #[test]
    fn no_yes_no() {
        let session = |id: i64, t: i64| Session { id, first: t, last: t, merged: Vec::new(), slot: id as u32 };
        let mut s =
            Sessions { live: smallvec![session(0, 0), session(1, 20), session(2, 25), session(3, 40)], next_id: 4 };
        let mut merges = Vec::new();
        s.detect_merges(1, GAP, &mut merges);
        assert_eq!(bounds(&s), vec![(0, 0, 0, vec![]), (1, 20, 25, vec![2]), (3, 40, 40, vec![])]);
        assert_eq!(merges, vec![Merge { original_slot: 2, target_slot: 1, target_id: 1 }]);
        // Through assignment: 25 extends session 1 to [20, 25]; 40 − 25 > 10, so no merge.
        let (s, merges) = run(&[0, 20, 40, 25]);
        assert_eq!(bounds(&s), vec![(0, 0, 0, vec![]), (1, 20, 25, vec![]), (2, 40, 40, vec![])]);
        assert!(merges.is_empty());
    }

    #[test]
    fn merge_target_is_the_earliest_opening_session() {
        // x@100, y@85, z@92 → 0 merges into 1 (spec §5.2.3).
        let (s, merges) = run(&[100, 85, 92]);
        assert_eq!(bounds(&s), vec![(1, 85, 100, vec![0])]);
        assert_eq!(merges, vec![Merge { original_slot: 0, target_slot: 1, target_id: 1 }]);
    }

    #[test]
    fn merged_ids_are_not_transitive() {
        let (s, _) = run(&[0, 30, 50, 40, 20, 10]);
        assert_eq!(bounds(&s), vec![(0, 0, 50, vec![1])]);
    }

    /// The shortened sweep after an extension must give exactly what a sweep of all sessions
    /// gives: random times (in and out of order, with closes in between), both ways.
    #[test]
    fn shortened_sweep_matches_the_full_sweep() {
        use rand::{Rng, SeedableRng, rngs::SmallRng};
        for seed in 0..300 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let (mut fast, mut full) = (Sessions::default(), Sessions::default());
            let (mut fast_merges, mut full_merges) = (Vec::new(), Vec::new());
            let (mut fast_slots, mut full_slots) = (0u32, 0u32);
            let mut now = 0i64;
            for step in 0..200 {
                now += rng.random_range(0..8);
                let ts = now - rng.random_range(0..if seed % 3 == 0 { 1 } else { 40 });
                let a = fast.assign(
                    ts,
                    GAP,
                    || {
                        fast_slots += 1;
                        fast_slots - 1
                    },
                    &mut fast_merges,
                );
                let b = full.assign_with(
                    ts,
                    GAP,
                    || {
                        full_slots += 1;
                        full_slots - 1
                    },
                    &mut full_merges,
                    |s, _, gap, m| {
                        let sorted = s.live.windows(2).all(|w| w[0].first <= w[1].first);
                        s.sweep_all(sorted, gap, m)
                    },
                );
                assert_eq!(a, b, "seed {seed}, step {step}, ts {ts}");
                assert_eq!(fast.live, full.live, "seed {seed}, step {step}, ts {ts}");
                if rng.random_range(0..10) == 0 {
                    let (mut x, mut y) = (Vec::new(), Vec::new());
                    fast.close(now - 15, GAP, &mut x);
                    full.close(now - 15, GAP, &mut y);
                    assert_eq!(x, y);
                }
            }
            assert_eq!(fast_merges, full_merges, "seed {seed}");
        }
    }

    #[test]
    fn close_is_strict_and_keeps_next_id() {
        let (mut s, _) = run(&[0, 30]);
        let mut out = Vec::new();
        s.close(10, GAP, &mut out);
        assert!(out.is_empty(), "last 0 is not < 10 - 10");
        s.close(11, GAP, &mut out);
        assert_eq!(out.len(), 1);
        s.close(crate::time::POS_INF, GAP, &mut out);
        assert_eq!(out.len(), 2);
        assert!(s.live.is_empty());
        assert_eq!(s.next_id, 2);
        s.close(crate::time::NEG_INF, GAP, &mut out);
    }

    /// `due_prefix` counts the due sessions before the first live one and sees a due one
    /// anywhere behind it; `close_prefix` then closes exactly the counted ones, and `close`
    /// the rest. Sessions as out-of-order rows leave them: a later session may end earlier.
    #[test]
    fn due_prefix_and_sessions_due_behind_a_live_one() {
        let with_lasts = |lasts: &[i64]| {
            let session = |(id, &t): (usize, &i64)| Session {
                id: id as i64,
                first: t,
                last: t,
                merged: Vec::new(),
                slot: id as u32,
            };
            Sessions { live: lasts.iter().enumerate().map(session).collect(), next_id: lasts.len() as i64 }
        };
        // Due at 20 with gap 10: `last < 10`.
        for (lasts, expected) in [
            (&[][..], (0, false)),
            (&[0][..], (1, false)),
            (&[100][..], (0, false)),
            (&[0, 1][..], (2, false)),
            (&[100, 0][..], (0, true)),
            (&[0, 100, 5][..], (1, true)),
            (&[0, 100, 200, 5][..], (1, true)),
            (&[0, 100, 200, 300][..], (1, false)),
        ] {
            let mut s = with_lasts(lasts);
            let (prefix, behind) = s.due_prefix(20, GAP);
            assert_eq!((prefix, behind), expected, "lasts {lasts:?}");
            let mut out = Vec::new();
            s.close_prefix(prefix, &mut out);
            assert!(out.iter().all(|x| x.last < 10) && out.len() == prefix, "lasts {lasts:?}");
            assert_eq!(s.any_due(20, GAP), behind, "lasts {lasts:?}");
            s.close(20, GAP, &mut out);
            assert_eq!(out.len(), lasts.iter().filter(|&&t| t < 10).count(), "lasts {lasts:?}");
        }
    }
}
