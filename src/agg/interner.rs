//! Distinct byte strings with dense ids in insertion order, kept in one arena: the key table of
//! each shard and the set/dict containers of `collect_window` both intern through it.
//!
//! The hash table is an open-addressing table of cache-line buckets of four entries, probed
//! bucket by bucket from the one the hash's low bits name. It is written out here
//! rather than taken from `hashbrown` for one reason: a string's bucket is known from its hash
//! alone, so the engine can ask for a row's bucket some rows before it interns it
//! ([`ByteInterner::prefetch`]). With 100,000 keys the table outgrows the core's caches
//! and a lookup is a cache miss; `hashbrown` reads a control group and then the entry, two
//! dependent misses that no public API lets a caller start early.

use crate::error::{Result, WindrowError};

/// Byte strings interned to dense `u32` ids (0, 1, … in first-insertion order).
#[derive(Default, Debug)]
pub(crate) struct ByteInterner {
    /// A power of two of buckets (none before the first string); at most 3/4 of the entries
    /// are used, so every probe sequence meets an empty entry.
    buckets: Vec<Bucket>,
    hashes: Vec<u64>,
    bytes: Vec<u8>,
    /// `ends[i]`: where string `i` ends in `bytes` (it starts where string `i - 1` ends).
    ends: Vec<usize>,
}

impl ByteInterner {
    /// Strings interned so far.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The bytes of string `id`.
    #[inline]
    pub fn get(&self, id: u32) -> &[u8] {
        slice(&self.bytes, &self.ends, id)
    }

    /// Appends the bytes of string `id` to `out`. Short strings are copied as one 8-byte
    /// word and the excess cut off, which is cheaper than a `memcpy` call per string when
    /// gathering many short keys.
    #[inline(always)]
    pub fn append_to(&self, id: u32, out: &mut Vec<u8>) {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let len = self.ends[i] - start;
        match self.bytes.get(start..start + 8) {
            Some(word) if len <= 8 => {
                out.extend_from_slice(word);
                out.truncate(out.len() - (8 - len));
            }
            _ => out.extend_from_slice(&self.bytes[start..start + len]),
        }
    }

    /// The hash `bytes` of string `id` was interned with.
    pub fn hash(&self, id: u32) -> u64 {
        self.hashes[id as usize]
    }

    /// Starts loading the bucket where a string with `hash` would be, so that interning it a
    /// little later finds the bucket in cache (see the module comment). Only a hint: it changes
    /// nothing and costs a few instructions.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if let Some(bucket) = self.buckets.get(home(hash, self.buckets.len())) {
            crate::cpu::prefetch(bucket);
        }
    }

    /// The id of `bytes` (whose hash is `hash`, from any hasher used consistently), appending
    /// it if absent; `true` when it was appended.
    ///
    /// # Errors
    /// More than `u32::MAX` distinct strings.
    #[inline(always)]
    pub fn intern(&mut self, bytes: &[u8], hash: u64) -> Result<(u32, bool)> {
        // The lookup is the per-row hot path and stays small enough to inline; appending is
        // rare (once per distinct string) and kept out of line. A candidate is rejected on its
        // tag (28 hash bits and the length) and short form without touching the arena; only
        // strings longer than 8 bytes are compared byte by byte. A bucket's four tags are
        // compared at once into a bit mask, not one by one: where in its bucket a key sits is
        // random, and a branch on each entry was mispredicted about once a row (callgrind's
        // branch simulation, 1000 keys).
        let (tag, short) = (entry_tag(hash, bytes), short_form(bytes));
        let n = self.buckets.len();
        if n > 0 {
            let mut b = home(hash, n);
            loop {
                let bucket = &self.buckets[b];
                let mut hits = crate::cpu::eq_mask4(&bucket.tags, tag);
                while hits != 0 {
                    let j = hits.trailing_zeros() as usize;
                    if bucket.shorts[j] == short && (bytes.len() <= 8 || self.get(bucket.ids[j]) == bytes) {
                        return Ok((bucket.ids[j], false));
                    }
                    hits &= hits - 1;
                }
                if crate::cpu::eq_mask4(&bucket.tags, EMPTY_TAG) != 0 {
                    break;
                }
                b = (b + 1) & (n - 1);
            }
        }
        self.append(bytes, hash).map(|id| (id, true))
    }

    #[cold]
    #[inline(never)]
    fn append(&mut self, bytes: &[u8], hash: u64) -> Result<u32> {
        let id = u32::try_from(self.ends.len())
            .map_err(|_| WindrowError::Data("more than 2^32 distinct values in one table".into()))?;
        if (self.ends.len() + 1) * 4 > self.buckets.len() * BUCKET * 3 {
            self.grow();
        }
        self.bytes.extend_from_slice(bytes);
        self.ends.push(self.bytes.len());
        self.hashes.push(hash);
        place(&mut self.buckets, hash, entry_tag(hash, bytes), short_form(bytes), id);
        Ok(id)
    }

    /// Doubles the buckets (16 to start with) and places every entry again.
    fn grow(&mut self) {
        let count = (self.buckets.len() * 2).max(16);
        let old = std::mem::replace(&mut self.buckets, vec![Bucket::EMPTY; count]);
        for bucket in &old {
            for j in 0..BUCKET {
                if bucket.tags[j] != EMPTY_TAG {
                    let hash = self.hashes[bucket.ids[j] as usize];
                    place(&mut self.buckets, hash, bucket.tags[j], bucket.shorts[j], bucket.ids[j]);
                }
            }
        }
    }
}

/// Entries per bucket: one 64-byte cache line.
const BUCKET: usize = 4;

/// The tag of an empty entry; no string's tag (see [`entry_tag`]).
const EMPTY_TAG: u32 = 0;

/// Four entries, stored by field so that their tags compare as one vector: per entry the
/// string's [`entry_tag`], [`short_form`] and id. Filled in order: an empty entry is followed
/// only by empty ones.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(64))]
struct Bucket {
    tags: [u32; BUCKET],
    ids: [u32; BUCKET],
    shorts: [u64; BUCKET],
}

impl Bucket {
    const EMPTY: Bucket = Bucket { tags: [EMPTY_TAG; BUCKET], ids: [0; BUCKET], shorts: [0; BUCKET] };
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

/// The first bucket probed for `hash` among `n` (a power of two, or 0: then an index past the
/// end, which `get` rejects).
#[inline]
fn home(hash: u64, n: usize) -> usize {
    hash as usize & n.wrapping_sub(1)
}

/// Puts an entry into the first empty entry of its probe sequence (the table has one).
fn place(buckets: &mut [Bucket], hash: u64, tag: u32, short: u64, id: u32) {
    let n = buckets.len();
    let mut b = home(hash, n);
    loop {
        let bucket = &mut buckets[b];
        if let Some(j) = bucket.tags.iter().position(|&t| t == EMPTY_TAG) {
            (bucket.tags[j], bucket.shorts[j], bucket.ids[j]) = (tag, short, id);
            return;
        }
        b = (b + 1) & (n - 1);
    }
}

/// What a table entry keeps of a string's hash and length, in 32 bits: the hash's upper 28
/// bits and, below them, the length plus one, up to 15 (strings of 14 bytes or more all get
/// 15; they are compared byte by byte anyway). Never 0, the empty entry's tag. Up to 8 bytes
/// the length is exact, which with [`short_form`] determines the string.
#[inline]
fn entry_tag(hash: u64, b: &[u8]) -> u32 {
    ((hash >> 32) as u32 & !0xf) | (b.len().min(0xe) as u32 + 1)
}

/// The bytes of a string of up to 8 bytes packed into a `u64` (exact for that length: with
/// the length known, the packed form determines the bytes); for longer strings, a digest of
/// their first and last 4 bytes. Reads two possibly overlapping words instead of copying, so
/// no call to `memcpy` on the hot path.
#[inline]
fn short_form(b: &[u8]) -> u64 {
    let n = b.len();
    if n >= 4 {
        let word = |at: usize| u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]));
        word(0) | (word(n - 4) << 32)
    } else if n > 0 {
        u64::from(b[0]) | (u64::from(b[n / 2]) << 8) | (u64::from(b[n - 1]) << 16)
    } else {
        0
    }
}

#[inline]
fn slice<'a>(bytes: &'a [u8], ends: &[usize], id: u32) -> &'a [u8] {
    let i = id as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] };
    &bytes[start..ends[i]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_dense_in_first_insertion_order() {
        let mut t = ByteInterner::default();
        let h = |b: &[u8]| b.iter().map(|&x| u64::from(x)).sum::<u64>(); // collisions on purpose
        assert_eq!(t.intern(b"ab", h(b"ab")).unwrap(), (0, true));
        assert_eq!(t.intern(b"ba", h(b"ba")).unwrap(), (1, true));
        assert_eq!(t.intern(b"", h(b"")).unwrap(), (2, true));
        assert_eq!(t.intern(b"ab", h(b"ab")).unwrap(), (0, false));
        assert_eq!(t.intern(b"", h(b"")).unwrap(), (2, false));
        assert_eq!((t.len(), t.get(1), t.get(2)), (3, &b"ba"[..], &b""[..]));
        // Short strings near the arena's end take the plain copy, the others the word copy.
        let mut out = Vec::new();
        for id in [1, 2, 0, 1] {
            t.append_to(id, &mut out);
        }
        assert_eq!(out, b"baabba");
        assert_eq!(t.intern(b"0123456789", 9).unwrap(), (3, true));
        out.clear();
        for id in [3, 1, 2, 0, 3] {
            t.append_to(id, &mut out);
        }
        assert_eq!(out, b"0123456789baab0123456789");
    }

    /// The table grows from nothing through many doublings; strings spread over the buckets
    /// and strings that all share one hash (one long probe run across buckets) both keep
    /// their ids, and the empty string is never taken for an empty entry.
    #[test]
    fn ids_survive_growth_and_long_probe_runs() {
        let mut t = ByteInterner::default();
        t.prefetch(7); // no buckets yet: nothing to ask for
        let spread = |i: u32| u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for i in 0..5000u32 {
            assert_eq!(t.intern(format!("k{i}").as_bytes(), spread(i)).unwrap(), (i, true));
        }
        for i in 0..300u32 {
            assert_eq!(t.intern(format!("same{i}").as_bytes(), 42).unwrap(), (5000 + i, true));
        }
        for i in 0..5000u32 {
            t.prefetch(spread(i));
            assert_eq!(t.intern(format!("k{i}").as_bytes(), spread(i)).unwrap(), (i, false));
        }
        for i in 0..300u32 {
            assert_eq!(t.intern(format!("same{i}").as_bytes(), 42).unwrap(), (5000 + i, false));
        }
        assert_eq!((t.len(), t.get(4999), t.get(5299)), (5300, &b"k4999"[..], &b"same299"[..]));
        // A zero hash gives the empty string a tag of 1 (its length plus one), never the
        // empty entry's 0.
        let mut t = ByteInterner::default();
        assert_eq!(t.intern(b"", 0).unwrap(), (0, true));
        assert_eq!(t.intern(b"", 0).unwrap(), (0, false));
        assert_eq!(t.intern(b"x", 0).unwrap(), (1, true));
        assert_eq!(t.intern(b"", 0).unwrap(), (0, false));
    }

    /// Up to 8 bytes the packed form decides equality on its own, so every pair of distinct
    /// short strings of one length must pack differently; longer strings that share their
    /// ends must still be told apart by their bytes.
    #[test]
    fn short_forms_separate_strings_and_long_ones_are_compared() {
        let mut seen = std::collections::HashMap::new();
        let alphabet = [0u8, 1, 2, 255];
        for len in 0..=8usize {
            let count = alphabet.len().pow(len.min(4) as u32);
            for mut code in 0..count {
                // All strings over `alphabet` up to length 4; for 5..8, vary each position.
                let mut s = vec![7u8; len];
                for byte in s.iter_mut().take(4) {
                    *byte = alphabet[code % alphabet.len()];
                    code /= alphabet.len();
                }
                if len > 4 {
                    s[len - 1] = s[0] ^ 0x5a;
                }
                if let Some(other) = seen.insert((len, short_form(&s)), s.clone()) {
                    assert_eq!(other, s, "{other:?} and {s:?} pack alike");
                }
            }
        }
        for len in 1..=8usize {
            for i in 0..len {
                let a = vec![3u8; len];
                let mut b = a.clone();
                b[i] = 4;
                assert_ne!(short_form(&a), short_form(&b), "len {len}, byte {i}");
            }
        }
        // "a" and "aaa" pack alike: only the length in the entry's tag tells them apart.
        let mut t = ByteInterner::default();
        assert_eq!(short_form(b"a"), short_form(b"aaa"));
        assert_eq!(t.intern(b"a", 5).unwrap(), (0, true));
        assert_eq!(t.intern(b"aaa", 5).unwrap(), (1, true));
        assert_eq!(t.intern(b"a", 5).unwrap(), (0, false));
        let mut t = ByteInterner::default();
        let (a, b) = (b"abcdXXXXwxyz".as_slice(), b"abcdYYYYwxyz".as_slice());
        assert_eq!(short_form(a), short_form(b));
        assert_eq!(t.intern(a, 1).unwrap(), (0, true));
        assert_eq!(t.intern(b, 1).unwrap(), (1, true));
        assert_eq!(t.intern(a, 1).unwrap(), (0, false));
        assert_eq!(t.intern(b, 1).unwrap(), (1, false));
    }
}
