//! The two processor features the engine's many-key path uses directly, each with a plain
//! fallback on other targets: a software prefetch, which lets the row loops start the cache
//! misses of rows ahead (see [`crate::agg::ByteInterner::prefetch`] and the shard's row loop),
//! and a four-lane compare, which matches a key-table bucket's tags at once.

/// Asks the processor to start loading every cache line of `value` into all cache levels (a
/// value that straddles two lines needs both). A hint with no effect on results; on targets
/// without the instruction it does nothing.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    prefetch_lines(std::ptr::from_ref(value).cast(), std::mem::size_of::<T>().max(1));
}

/// [`prefetch`] for the elements of `values`, at most [`SLICE_LINES`] cache lines from the
/// first.
#[inline(always)]
pub(crate) fn prefetch_slice<T>(values: &[T]) {
    let start = values.as_ptr().cast::<i8>();
    prefetch_lines(start, std::mem::size_of_val(values).min(SLICE_LINES * LINE - start as usize % LINE));
}

/// Asks for every cache line of the `size` bytes from `start`.
#[inline(always)]
fn prefetch_lines(start: *const i8, size: usize) {
    let misalign = start as usize % LINE;
    let mut at = 0;
    while at < misalign + size {
        prefetch_line(start.wrapping_sub(misalign).wrapping_add(at));
        at += LINE;
    }
}

/// The most lines [`prefetch_slice`] asks for: a sliding key's open windows (five or six of
/// 32 bytes) span three or four.
const SLICE_LINES: usize = 4;

/// The cache line size of the processors this is tuned for.
const LINE: usize = 64;

// The crate's only `unsafe` blocks, here and in `eq_mask4`: Rust does not count x86-64's
// baseline SSE and SSE2 as enabled when it checks calls of `#[target_feature]` intrinsics.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn prefetch_line(p: *const i8) {
    // SAFETY: SSE is part of x86-64, so the instruction exists; a prefetch never faults and
    // never changes memory, whatever the address.
    unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p) }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn prefetch_line(_: *const i8) {}

/// Bit `j` set where `lanes[j] == x`. On x86-64 one SSE2 compare: written as four scalar
/// compares (the fallback), the compiler kept them scalar, about 15 instructions against 4,
/// on the per-row path of interning.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
pub(crate) fn eq_mask4(lanes: &[u32; 4], x: u32) -> u32 {
    use std::arch::x86_64::{_mm_castsi128_ps, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_ps, _mm_set1_epi32};
    // SAFETY: SSE2 is part of x86-64, and the unaligned load reads exactly the 16 bytes of
    // `lanes`.
    unsafe {
        let eq = _mm_cmpeq_epi32(_mm_loadu_si128(lanes.as_ptr().cast()), _mm_set1_epi32(x as i32));
        _mm_movemask_ps(_mm_castsi128_ps(eq)) as u32
    }
}

/// Bit `j` set where `lanes[j] == x`.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn eq_mask4(lanes: &[u32; 4], x: u32) -> u32 {
    lanes.iter().enumerate().fold(0, |mask, (j, &t)| mask | (u32::from(t == x) << j))
}

#[cfg(test)]
mod tests {
    #[test]
    fn eq_mask4_sets_the_equal_lanes() {
        assert_eq!(super::eq_mask4(&[7, 0, 7, 1], 7), 0b0101);
        assert_eq!(super::eq_mask4(&[7, 0, 7, 1], 0), 0b0010);
        assert_eq!(super::eq_mask4(&[u32::MAX, 3, 3, u32::MAX], u32::MAX), 0b1001);
        assert_eq!(super::eq_mask4(&[1, 2, 3, 4], 5), 0);
    }
}
