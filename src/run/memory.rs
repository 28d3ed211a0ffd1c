//! Gives freed memory back to the system. glibc's allocator keeps what a burst freed (an org of
//! 10,000 members is reconciled from tens of megabytes of temporaries) for reuse, so without this
//! the resident set stays at the burst's high-water mark, and the next burst stacks on it.

use std::time::Duration;

/// How often freed memory goes back.
const EVERY: Duration = Duration::from_secs(5);

/// Trims the allocator's free memory every few seconds, on a blocking thread (a trim walks the
/// whole heap).
pub fn return_freed_memory() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and has no preconditions; it only releases pages the
    // allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
