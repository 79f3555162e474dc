//! Distinct byte strings with dense ids in insertion order, kept in one arena: the key table of
//! each shard and the set/dict containers of `collect_window` both intern through it.

use hashbrown::HashTable;

use crate::error::{Result, WindrowError};

/// Byte strings interned to dense `u32` ids (0, 1, … in first-insertion order).
#[derive(Default, Debug)]
pub(crate) struct ByteInterner {
    table: HashTable<u32>,
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
        // rare (once per distinct string) and kept out of line.
        let (arena, ends) = (&self.bytes, &self.ends);
        match self.table.find(hash, |&id| slice(arena, ends, id) == bytes) {
            Some(&id) => Ok((id, false)),
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
        let hashes = &self.hashes;
        self.table.insert_unique(hash, id, |&id| hashes[id as usize]);
        Ok(id)
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
    }
}
