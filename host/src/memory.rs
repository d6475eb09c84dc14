//! The process's own memory. glibc's allocator keeps what is freed for reuse, also between live
//! blocks, for the life of the process; after a burst of work (the start, a compile, a batch of
//! jobs) the daemon gives it back, so that an idle daemon holds what it uses.

/// Gives the allocator's free pages back to the system. It takes milliseconds on a large heap:
/// for quiet moments, and off the async runtime's threads.
pub fn release_freed() {
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe { libc::malloc_trim(0) };
}
