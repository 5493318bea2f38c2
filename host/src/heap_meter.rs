//! A test-only global allocator that counts the heap bytes each thread holds, so that a unit
//! test can show a structure's memory stays bounded by counting bytes: not by timing, and not
//! by the process's resident size, which the tests running beside it disturb. It hands every
//! call on to the system allocator unchanged.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, with each thread's allocations counted.
pub struct CountingAllocator;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(bytes: isize) {
    let _ = HELD.try_with(|held| {
        held.set(held.get() + bytes);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(held.get())));
    });
}

/// The bytes this thread has allocated and not freed (freed by another thread, they stay
/// counted here).
pub fn held_by_this_thread() -> isize {
    HELD.with(Cell::get)
}

/// The most this thread has held since [`reset_peak`] (or since it started).
pub fn peak_of_this_thread() -> isize {
    PEAK.with(Cell::get)
}

/// Starts this thread's peak again from what it holds now.
pub fn reset_peak() {
    PEAK.with(|peak| peak.set(held_by_this_thread()));
}

// SAFETY: every call is the system allocator's, with the same arguments; counting allocates
// nothing.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        if !moved.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        moved
    }
}
