//! Distinct byte strings with dense ids in insertion order, kept in one arena: the key table of
//! each shard and the set/dict containers of `collect_window` both intern through it.

use hashbrown::HashTable;

use crate::error::{Result, WindrowError};

/// Byte strings interned to dense `u32` ids (0, 1, … in first-insertion order).
#[derive(Default, Debug)]
pub(crate) struct ByteInterner {
    table: HashTable<Entry>,
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

    /// The id of `bytes` (whose hash is `hash`, from any hasher used consistently), appending
    /// it if absent; `true` when it was appended.
    ///
    /// # Errors
    /// More than `u32::MAX` distinct strings.
    #[inline]
    pub fn intern(&mut self, bytes: &[u8], hash: u64) -> Result<(u32, bool)> {
        // The lookup is the per-row hot path and stays small enough to inline; appending is
        // rare (once per distinct string) and kept out of line. A candidate is rejected on its
        // tag (28 hash bits and the length) and short form without touching the arena; only
        // strings longer than 8 bytes are compared byte by byte.
        let (arena, ends) = (&self.bytes, &self.ends);
        let (tag, short) = (entry_tag(hash, bytes), short_form(bytes));
        let found = self.table.find(hash, |e| {
            e.tag == tag && e.short == short && (bytes.len() <= 8 || slice(arena, ends, e.id) == bytes)
        });
        match found {
            Some(e) => Ok((e.id, false)),
            None => self.append(bytes, hash).map(|id| (id, true)),
        }
    }

    #[cold]
    #[inline(never)]
    fn append(&mut self, bytes: &[u8], hash: u64) -> Result<u32> {
        let id = u32::try_from(self.ends.len())
            .map_err(|_| WindrowError::Data("more than 2^32 distinct values in one table".into()))?;
        self.bytes.extend_from_slice(bytes);
        self.ends.push(self.bytes.len());
        self.hashes.push(hash);
        let entry = Entry { short: short_form(bytes), id, tag: entry_tag(hash, bytes) };
        let hashes = &self.hashes; // (growing the table rehashes from here)
        self.table.insert_unique(hash, entry, |e| hashes[e.id as usize]);
        Ok(id)
    }
}

/// What a table entry keeps of a string's hash and length, in 32 bits: the hash's upper 28
/// bits and, below them, the length up to 15 (longer strings all get 15; they are compared
/// byte by byte anyway). Up to 8 bytes the length is exact, which with [`short_form`]
/// determines the string.
#[inline]
fn entry_tag(hash: u64, b: &[u8]) -> u32 {
    ((hash >> 32) as u32 & !0xf) | b.len().min(0xf) as u32
}

/// A string's slot in the hash table: enough to reject (or, up to 8 bytes, accept) a
/// candidate without reading the arena. 16 bytes, so that with many keys more of the table
/// stays in cache (the full hash is in `ByteInterner::hashes`, for growing the table).
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// [`short_form`] of the bytes.
    short: u64,
    id: u32,
    /// [`entry_tag`] of the hash and bytes.
    tag: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 16);

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
