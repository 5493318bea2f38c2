//! Giving the heap's free memory back to the operating system after a burst of work.
//!
//! glibc's allocator gives each thread that allocates its own arena, and keeps what is freed
//! there for the thread's next allocation. Work that moves through many blocking threads, such
//! as sending a mount's inode names to their cold tier, leaves tens of megabytes free but held
//! in arenas no thread may touch again soon. `give_back` returns those pages (glibc's
//! `malloc_trim`); it is a no-op with other C libraries.

/// Returns the free pages of every malloc arena to the operating system. It walks every
/// arena under its lock: call it after a burst, on a blocking thread, not per request.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory the allocator owns; it takes the arenas'
    // own locks and touches no memory the program holds.
    unsafe {
        libc::malloc_trim(0);
    }
}
