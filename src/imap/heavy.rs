//! CPU-heavy steps of a command (parsing a large message, scanning bodies
//! for SEARCH) run where they cannot stall the other sessions that share a
//! worker thread: the runtime hands this thread's other tasks to another
//! worker for as long as the step takes.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Messages at least this large are parsed off the event loop; smaller
/// ones cost less than the hand-over.
pub const HEAVY_BYTES: usize = 256 * 1024;

/// Runs `work` so that it does not block other tasks. On a runtime that
/// cannot do that (current-thread, as some tests build), it just runs.
pub fn off_the_event_loop<R>(work: impl FnOnce() -> R) -> R {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
