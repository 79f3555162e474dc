//! A software prefetch: the hint that lets the per-row loop start the cache misses of a whole
//! block of rows at once (see [`crate::agg::ByteInterner::prefetch`] and the shard's row loop).

/// Asks the processor to start loading every cache line of `value` into all cache levels (a
/// value that straddles two lines needs both). A hint with no effect on results; on targets
/// without the instruction it does nothing.
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    let start = std::ptr::from_ref(value).cast::<i8>();
    let size = std::mem::size_of::<T>().max(1);
    let misalign = start as usize % LINE;
    let mut at = 0;
    while at < misalign + size {
        prefetch_line(start.wrapping_sub(misalign).wrapping_add(at));
        at += LINE;
    }
}

/// The cache line size of the processors this is tuned for.
const LINE: usize = 64;

// The crate's only `unsafe`: Rust does not count x86-64's baseline SSE as enabled when it
// checks calls to `#[target_feature]` intrinsics, so this one needs a block.
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
