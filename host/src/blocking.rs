//! The bounded pool for blocking work: every file system call on a host file (a granted
//! directory, a staged copy, an inode journal) runs here, never on an async worker.
//!
//! A call takes one of [`THREADS`] permits and runs on tokio's blocking threads. Its caller
//! waits at most until its deadline, for a permit and for the call, and then gets [`Overdue`]:
//! a call stuck in the kernel (a hung disk, a FIFO opened for data) fails alone, and other
//! clients and other mounts go on being served. A stuck call keeps its permit until it
//! returns, so stuck calls can never take more than [`THREADS`] threads.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Blocking calls that may run at once, stuck ones included.
pub const THREADS: usize = 64;

/// How long a caller waits for a host file call unless it says otherwise.
pub const DEADLINE: Duration = Duration::from_secs(30);

static POOL: LazyLock<Pool> = LazyLock::new(|| Pool::new(THREADS));

/// A blocking call did not finish before its deadline, or found no free thread by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overdue;

impl std::fmt::Display for Overdue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a blocking file system call did not finish before its deadline")
    }
}

impl std::error::Error for Overdue {}

/// Runs `call` on the process's blocking pool and waits for it until `deadline` has passed.
/// A panic in `call` is resumed in the caller.
pub async fn run<R, F>(deadline: Duration, call: F) -> Result<R, Overdue>
where
    R: Send + 'static,
    F: FnOnce() -> R + Send + 'static,
{
    POOL.run(deadline, call).await
}

/// Threads for blocking calls, bounded by permits that a call holds until it returns.
struct Pool {
    permits: Arc<Semaphore>,
}

impl Pool {
    fn new(threads: usize) -> Pool {
        Pool {
            permits: Arc::new(Semaphore::new(threads)),
        }
    }

    async fn run<R, F>(&self, deadline: Duration, call: F) -> Result<R, Overdue>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let until = Instant::now() + deadline;
        let permit = tokio::time::timeout_at(until, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Overdue)?
            .expect("the pool's semaphore is never closed");
        let task = tokio::task::spawn_blocking(move || {
            let result = call();
            drop(permit);
            result
        });
        match tokio::time::timeout_at(until, task).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(joined)) => std::panic::resume_unwind(joined.into_panic()),
            Err(_) => Err(Overdue),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_returns_its_result() {
        assert_eq!(run(DEADLINE, || 6 * 7).await, Ok(42));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stuck_call_is_overdue_and_holds_its_thread_until_it_returns() {
        let pool = Pool::new(1);
        let (release, stuck) = mpsc::channel::<()>();
        let (returned, has_returned) = mpsc::channel::<()>();
        let short = Duration::from_millis(50);
        let waited = pool
            .run(short, move || {
                let _ = stuck.recv();
                returned.send(()).unwrap();
            })
            .await;
        assert_eq!(waited, Err(Overdue));
        // The stuck call still holds the pool's one thread: the next call finds none free.
        assert_eq!(pool.run(short, || "next").await, Err(Overdue));
        release.send(()).unwrap();
        has_returned.recv().unwrap();
        assert_eq!(pool.run(DEADLINE, || "after").await, Ok("after"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[should_panic(expected = "inside the call")]
    async fn a_panic_reaches_the_caller() {
        let _ = run(DEADLINE, || panic!("inside the call")).await;
    }
}
