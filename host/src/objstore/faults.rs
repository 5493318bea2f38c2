//! A failure-injecting object store, for tests: it wraps the client the host uses and, following
//! a mount's fault plan (`[mount.s3.faults]`, see `config::S3Faults`), makes chosen requests fail
//! as S3 fails them (503, a reset connection), wait, or hang until the request timeout, by
//! operation and by count. The rest pass through untouched, bodies included, so no byte is
//! copied. Listings and directory markers do not go through this client (see `markers`), so
//! they are never faulted.

use std::fmt;
use std::io::ErrorKind;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

use super::store::Client;
use crate::config::{FaultAction, S3Faults, S3Op};

/// The plan, and how many calls of its operations it has seen.
struct Plan {
    faults: S3Faults,
    /// The request timeout a hanging request meets.
    timeout: Duration,
    calls: AtomicU64,
}

impl Plan {
    /// Applies the plan to this call of `op`: `Ok` to make the request (perhaps after a delay),
    /// or the error it meets instead.
    async fn meet(&self, op: S3Op) -> Result<()> {
        let faults = &self.faults;
        if !faults.ops.contains(&op) {
            return Ok(());
        }
        if let Some(switch) = faults.while_exists.clone() {
            // A file system call: on the blocking pool, never on an async worker.
            let on = crate::blocking::run(crate::blocking::DEADLINE, move || switch.exists());
            if !on.await.unwrap_or(false) {
                return Ok(());
            }
        }
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let past = call.saturating_sub(faults.after);
        if call < faults.after || faults.times.is_some_and(|times| past >= times) {
            return Ok(());
        }
        tracing::info!(?op, action = ?faults.action, "injecting an object-store fault");
        let (kind, message) = match faults.action {
            FaultAction::Delay => {
                tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
                return Ok(());
            }
            FaultAction::Unavailable => (
                ErrorKind::Other,
                "injected fault: 503 Service Unavailable (SlowDown)".to_string(),
            ),
            FaultAction::Reset => (
                ErrorKind::ConnectionReset,
                "injected fault: connection reset by peer".to_string(),
            ),
            FaultAction::Hang => {
                tokio::time::sleep(self.timeout).await;
                (
                    ErrorKind::TimedOut,
                    format!("injected fault: no answer within {:?}", self.timeout),
                )
            }
        };
        Err(object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::new(kind, message)),
        })
    }
}

/// `inner`, with the requests of a fault plan failing, waiting or hanging.
pub struct FaultyStore {
    inner: Arc<dyn Client>,
    plan: Arc<Plan>,
}

impl FaultyStore {
    /// Wraps `inner` in `faults`; a hanging request fails once `timeout` has passed.
    pub fn new(inner: Arc<dyn Client>, faults: S3Faults, timeout: Duration) -> FaultyStore {
        let plan = Plan {
            faults,
            timeout,
            calls: AtomicU64::new(0),
        };
        FaultyStore {
            inner,
            plan: Arc::new(plan),
        }
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.inner)
    }
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({:?}, {:?})", self.inner, self.plan.faults)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.plan.meet(S3Op::Put).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.plan.meet(S3Op::CreateMultipart).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let op = if options.head { S3Op::Head } else { S3Op::Get };
        self.plan.meet(op).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.plan.meet(S3Op::Get).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let plan = self.plan.clone();
        let faulted = locations.then(move |location| {
            let plan = plan.clone();
            async move {
                plan.meet(S3Op::Delete).await?;
                location
            }
        });
        self.inner.delete_stream(faulted.boxed())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.plan.meet(S3Op::Copy).await?;
        self.inner.copy_opts(from, to, options).await
    }
}

#[async_trait]
impl MultipartStore for FaultyStore {
    async fn create_multipart(&self, path: &Path) -> Result<MultipartId> {
        self.plan.meet(S3Op::CreateMultipart).await?;
        self.inner.create_multipart(path).await
    }

    async fn put_part(
        &self,
        path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> Result<PartId> {
        self.plan.meet(S3Op::PutPart).await?;
        self.inner.put_part(path, id, part_idx, data).await
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> Result<PutResult> {
        self.plan.meet(S3Op::CompleteMultipart).await?;
        self.inner.complete_multipart(path, id, parts).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> Result<()> {
        self.plan.meet(S3Op::AbortMultipart).await?;
        self.inner.abort_multipart(path, id).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    use super::*;

    fn faulty(faults: S3Faults) -> FaultyStore {
        FaultyStore::new(Arc::new(InMemory::new()), faults, Duration::from_millis(50))
    }

    fn plan(ops: &[S3Op], after: u64, times: Option<u64>, action: FaultAction) -> S3Faults {
        S3Faults {
            ops: ops.to_vec(),
            after,
            times,
            action,
            delay_ms: 0,
            while_exists: None,
        }
    }

    async fn put(store: &FaultyStore, key: &str) -> bool {
        store
            .put(&Path::from(key), PutPayload::from_static(b"x"))
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn the_calls_of_the_plans_operations_after_the_first_ones_fail_for_so_many_times() {
        let store = faulty(plan(&[S3Op::Put], 1, Some(2), FaultAction::Unavailable));
        let outcomes = [
            put(&store, "a").await,
            put(&store, "b").await,
            put(&store, "c").await,
            put(&store, "d").await,
        ];
        assert_eq!(outcomes, [true, false, false, true]);
        assert!(
            store.head(&Path::from("a")).await.is_ok(),
            "a head is not a put"
        );
        assert!(
            store.head(&Path::from("b")).await.is_err(),
            "a failed put stores nothing"
        );
    }

    #[tokio::test]
    async fn a_cut_upload_fails_at_the_chosen_part_and_leaves_no_object() {
        let store = faulty(plan(&[S3Op::PutPart], 1, None, FaultAction::Reset));
        let key = Path::from("cut");
        let id = store.create_multipart(&key).await.unwrap();
        let first = PutPayload::from_static(b"first");
        assert!(store.put_part(&key, &id, 0, first).await.is_ok());
        let second = PutPayload::from_static(b"second");
        let error = store.put_part(&key, &id, 1, second).await.unwrap_err();
        assert!(error.to_string().contains("connection reset"), "{error}");
        assert!(store.head(&key).await.is_err());
    }

    #[tokio::test]
    async fn a_hanging_request_fails_at_the_timeout_and_a_switch_turns_the_plan_on_and_off() {
        let dir = tempfile::tempdir().unwrap();
        let switch = dir.path().join("outage");
        let mut faults = plan(&[S3Op::Head], 0, None, FaultAction::Hang);
        faults.while_exists = Some(switch.clone());
        let store = faulty(faults);
        let key = Path::from("k");
        store
            .put(&key, PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert!(store.head(&key).await.is_ok(), "no outage without the file");
        std::fs::write(&switch, b"").unwrap();
        let error = store.head(&key).await.unwrap_err();
        assert!(error.to_string().contains("no answer within"), "{error}");
        std::fs::remove_file(&switch).unwrap();
        assert!(store.head(&key).await.is_ok(), "the outage is over");
    }
}
