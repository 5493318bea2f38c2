//! The process's metrics, kept in one Prometheus registry and rendered for `GET /metrics` by
//! the admin listener (`admin`). Every series is named `nfsgw_*`; label values come only from
//! the config (mount names) or from fixed lists (procedure names, cache kinds, error kinds), so
//! a hostile client cannot grow the set of series. The rest of nfsgw records through the
//! functions here: the NFS front per call (`rpc`, `MountMetrics`), the caches and the plugin
//! runtime per mount, the write-back staging through `flush_queue_set`, `upload_failed` and
//! the streaming uploads' `upload_part_early` and `upload_stream`, and the readahead of
//! object-store reads (`readahead`). Metrics are process-wide (one registry, created on first
//! use), so recording needs no handle to pass around; a mount's series exist, at zero, from
//! `register_mount` on.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    program: &'static str,
    procedure: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountLabel {
    mount: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    mount: String,
    cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TierLabels {
    mount: String,
    tier: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    mount: String,
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    mount: String,
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    mount: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    mount: String,
    reason: &'static str,
}

type Histograms = Family<RpcLabels, Histogram, fn() -> Histogram>;

fn rpc_histogram() -> Histogram {
    // 50 µs to about 13 s, doubling.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 19))
}

struct Metrics {
    registry: Registry,
    rpc_requests: Family<RpcLabels, Counter>,
    rpc_duration: Histograms,
    mount_requests: Family<MountLabel, Counter>,
    mount_errors: Family<MountLabel, Counter>,
    read_bytes: Family<MountLabel, Counter>,
    written_bytes: Family<MountLabel, Counter>,
    cache_hits: Family<CacheLabels, Counter>,
    cache_misses: Family<CacheLabels, Counter>,
    plugin_calls: Family<OpLabels, Counter>,
    plugin_call_errors: Family<ErrorLabels, Counter>,
    plugin_failures: Family<FailureLabels, Counter>,
    plugin_instances: Family<MountLabel, Gauge>,
    flush_queue_depth: Family<MountLabel, Gauge>,
    upload_failures: Family<MountLabel, Counter>,
    upload_parts_early: Family<MountLabel, Counter>,
    upload_streams: Family<StreamLabels, Counter>,
    readahead_bytes: Family<MountLabel, Counter>,
    inode_names: Family<TierLabels, Gauge>,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("nfsgw");
        let m = Metrics {
            rpc_requests: Family::default(),
            rpc_duration: Histograms::new_with_constructor(rpc_histogram),
            mount_requests: Family::default(),
            mount_errors: Family::default(),
            read_bytes: Family::default(),
            written_bytes: Family::default(),
            cache_hits: Family::default(),
            cache_misses: Family::default(),
            plugin_calls: Family::default(),
            plugin_call_errors: Family::default(),
            plugin_failures: Family::default(),
            plugin_instances: Family::default(),
            flush_queue_depth: Family::default(),
            upload_failures: Family::default(),
            upload_parts_early: Family::default(),
            upload_streams: Family::default(),
            readahead_bytes: Family::default(),
            inode_names: Family::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "rpc_requests",
            "RPC calls answered, by program (nfs3, mount) and procedure",
            m.rpc_requests.clone(),
        );
        r.register_with_unit(
            "rpc_duration",
            "Time from a decoded call to its encoded reply",
            Unit::Seconds,
            m.rpc_duration.clone(),
        );
        r.register(
            "mount_requests",
            "NFSv3 calls addressed to a mount (by the file handle they carry)",
            m.mount_requests.clone(),
        );
        r.register(
            "mount_errors",
            "NFSv3 calls to a mount answered with a status other than NFS3_OK, or undecodable",
            m.mount_errors.clone(),
        );
        r.register_with_unit(
            "read",
            "Bytes returned by READ",
            Unit::Bytes,
            m.read_bytes.clone(),
        );
        r.register_with_unit(
            "written",
            "Bytes accepted by WRITE",
            Unit::Bytes,
            m.written_bytes.clone(),
        );
        r.register(
            "cache_hits",
            "Lookups answered from a mount's attribute (attr) or directory listing (dir) cache",
            m.cache_hits.clone(),
        );
        r.register(
            "cache_misses",
            "Lookups of a mount's attribute or directory listing cache that found nothing fresh",
            m.cache_misses.clone(),
        );
        r.register(
            "plugin_calls",
            "Calls into a mount's plugin, by operation",
            m.plugin_calls.clone(),
        );
        r.register(
            "plugin_call_errors",
            "Plugin calls that returned an error, by error",
            m.plugin_call_errors.clone(),
        );
        r.register(
            "plugin_failures",
            "Plugin calls that trapped, ran past call_timeout_ms (timeout) or panicked in the host; each replaced its instance",
            m.plugin_failures.clone(),
        );
        r.register(
            "plugin_instances",
            "The largest number of instances of a mount's plugin",
            m.plugin_instances.clone(),
        );
        r.register(
            "flush_queue_depth",
            "Staged files of a mount waiting to be uploaded to its backend",
            m.flush_queue_depth.clone(),
        );
        r.register(
            "upload_failures",
            "Uploads of staged files that failed",
            m.upload_failures.clone(),
        );
        r.register(
            "upload_parts_early",
            "Parts of staged files uploaded while the files were still being written",
            m.upload_parts_early.clone(),
        );
        r.register(
            "upload_streams",
            "Streaming multipart uploads of files being written, by how they ended (completed, aborted)",
            m.upload_streams.clone(),
        );
        r.register(
            "readahead_bytes",
            "Bytes of READs answered from blocks of an object fetched ahead",
            m.readahead_bytes.clone(),
        );
        r.register(
            "inode_names",
            "Names a mount's inode table holds, by tier: in memory, or in the cold tier's file",
            m.inode_names.clone(),
        );
        Metrics { registry, ..m }
    })
}

fn mount(name: &str) -> MountLabel {
    MountLabel {
        mount: name.to_string(),
    }
}

/// Makes every per-mount series of `name` exist (at zero), so dashboards see a mount before
/// its first call.
pub fn register_mount(name: &str) {
    let m = metrics();
    let label = mount(name);
    for family in [
        &m.mount_requests,
        &m.mount_errors,
        &m.read_bytes,
        &m.written_bytes,
        &m.upload_failures,
        &m.upload_parts_early,
        &m.readahead_bytes,
    ] {
        family.get_or_create_owned(&label);
    }
    for outcome in ["completed", "aborted"] {
        m.upload_streams.get_or_create_owned(&StreamLabels {
            mount: name.to_string(),
            outcome,
        });
    }
    m.flush_queue_depth.get_or_create_owned(&label);
    for reason in [Failure::Trap, Failure::Timeout, Failure::Panic] {
        m.plugin_failures.get_or_create_owned(&FailureLabels {
            mount: name.to_string(),
            reason: reason.label(),
        });
    }
}

/// One RPC call answered: `program` is "nfs3", "mount" or "other", `procedure` a name from a
/// fixed list.
pub fn rpc(program: &'static str, procedure: &'static str, elapsed: Duration) {
    let m = metrics();
    let labels = RpcLabels { program, procedure };
    m.rpc_requests.get_or_create(&labels).inc();
    m.rpc_duration
        .get_or_create(&labels)
        .observe(elapsed.as_secs_f64());
}

/// A mount's request counters, resolved once so the NFS front counts without lookups.
#[derive(Clone, Debug)]
pub struct MountMetrics {
    requests: Counter,
    errors: Counter,
    read_bytes: Counter,
    written_bytes: Counter,
}

impl MountMetrics {
    pub fn new(name: &str) -> MountMetrics {
        register_mount(name);
        let m = metrics();
        let label = mount(name);
        MountMetrics {
            requests: m.mount_requests.get_or_create_owned(&label),
            errors: m.mount_errors.get_or_create_owned(&label),
            read_bytes: m.read_bytes.get_or_create_owned(&label),
            written_bytes: m.written_bytes.get_or_create_owned(&label),
        }
    }

    /// An NFSv3 call to this mount, and whether it failed.
    pub fn request(&self, failed: bool) {
        self.requests.inc();
        if failed {
            self.errors.inc();
        }
    }

    pub fn read(&self, bytes: u64) {
        self.read_bytes.inc_by(bytes);
    }

    pub fn written(&self, bytes: u64) {
        self.written_bytes.inc_by(bytes);
    }

    /// (requests, errors) so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.requests.get(), self.errors.get())
    }
}

/// Hit and miss counters of one cache of one mount.
#[derive(Clone, Debug)]
pub struct CacheMetrics {
    hits: Counter,
    misses: Counter,
}

impl CacheMetrics {
    /// `cache` is "attr" or "dir".
    pub fn new(mount: &str, cache: &'static str) -> CacheMetrics {
        let m = metrics();
        let labels = CacheLabels {
            mount: mount.to_string(),
            cache,
        };
        CacheMetrics {
            hits: m.cache_hits.get_or_create_owned(&labels),
            misses: m.cache_misses.get_or_create_owned(&labels),
        }
    }

    pub fn record(&self, hit: bool) {
        if hit {
            self.hits.inc();
        } else {
            self.misses.inc();
        }
    }
}

/// Why a plugin call failed and lost its instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The plugin trapped (including running out of memory), or a new instance failed.
    Trap,
    /// The call ran past the mount's `call_timeout_ms`.
    Timeout,
    /// The host's code around the call panicked.
    Panic,
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::Trap => "trap",
            Failure::Timeout => "timeout",
            Failure::Panic => "panic",
        }
    }
}

/// A call into a mount's plugin (`op` is the interface function).
pub fn plugin_call(mount: &str, op: &'static str) {
    metrics()
        .plugin_calls
        .get_or_create(&OpLabels {
            mount: mount.to_string(),
            op,
        })
        .inc();
}

/// A plugin call that returned an error (`error` is the interface's error case).
pub fn plugin_call_error(mount: &str, error: &'static str) {
    metrics()
        .plugin_call_errors
        .get_or_create(&ErrorLabels {
            mount: mount.to_string(),
            error,
        })
        .inc();
}

pub fn plugin_failure(mount: &str, why: Failure) {
    metrics()
        .plugin_failures
        .get_or_create(&FailureLabels {
            mount: mount.to_string(),
            reason: why.label(),
        })
        .inc();
}

/// Plugin failures of a mount so far, all reasons together.
pub fn plugin_failures(mount: &str) -> u64 {
    let m = metrics();
    [Failure::Trap, Failure::Timeout, Failure::Panic]
        .into_iter()
        .map(|reason| {
            m.plugin_failures
                .get(&FailureLabels {
                    mount: mount.to_string(),
                    reason: reason.label(),
                })
                .map_or(0, |c| c.get())
        })
        .sum()
}

pub fn plugin_instances_set(mount: &str, n: usize) {
    metrics()
        .plugin_instances
        .get_or_create(&self::mount(mount))
        .set(n as i64);
}

/// The gauges of how many names `mount`'s inode table holds in memory and in its cold tier.
pub fn inode_names(mount: &str) -> (Gauge, Gauge) {
    let tier = |tier| {
        metrics()
            .inode_names
            .get_or_create(&TierLabels {
                mount: mount.to_string(),
                tier,
            })
            .clone()
    };
    (tier("memory"), tier("cold"))
}

/// Sets how many staged files of `mount` wait to be uploaded.
pub fn flush_queue_set(mount: &str, n: usize) {
    metrics()
        .flush_queue_depth
        .get_or_create(&self::mount(mount))
        .set(n as i64);
}

/// Counts one failed upload of a staged file of `mount`.
pub fn upload_failed(mount: &str) {
    metrics()
        .upload_failures
        .get_or_create(&self::mount(mount))
        .inc();
}

/// Counts one part of a staged file of `mount` uploaded while the file was being written.
pub fn upload_part_early(mount: &str) {
    metrics()
        .upload_parts_early
        .get_or_create(&self::mount(mount))
        .inc();
}

/// Counts `bytes` of a READ of `mount` answered from blocks read ahead.
pub fn readahead(mount: &str, bytes: u64) {
    metrics()
        .readahead_bytes
        .get_or_create(&self::mount(mount))
        .inc_by(bytes);
}

/// Counts one streaming upload of `mount` that ended: completed, or aborted.
pub fn upload_stream(mount: &str, completed: bool) {
    metrics()
        .upload_streams
        .get_or_create(&StreamLabels {
            mount: mount.to_string(),
            outcome: if completed { "completed" } else { "aborted" },
        })
        .inc();
}

/// Every metric in the text exposition format (OpenMetrics 1.0, which Prometheus scrapes).
pub fn render() -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &metrics().registry)
        .expect("writing to a String");
    out
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `series` (name and labels).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn recorded_values_show_in_the_exposition() {
        let name = "metrics-unit";
        let mount = MountMetrics::new(name);
        mount.request(false);
        mount.request(true);
        mount.read(4096);
        mount.written(10);
        let attr = CacheMetrics::new(name, "attr");
        attr.record(true);
        attr.record(true);
        attr.record(false);
        plugin_call(name, "stat");
        plugin_call_error(name, "not-found");
        plugin_failure(name, Failure::Timeout);
        flush_queue_set(name, 3);
        upload_failed(name);
        upload_failed(name);
        rpc("nfs3", "GETATTR", Duration::from_micros(120));
        let text = render();
        let m = "{mount=\"metrics-unit\"}";
        assert_eq!(
            sample(&text, &format!("nfsgw_mount_requests_total{m}")),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, &format!("nfsgw_mount_errors_total{m}")),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, &format!("nfsgw_read_bytes_total{m}")),
            Some(4096.0)
        );
        assert_eq!(
            sample(&text, &format!("nfsgw_written_bytes_total{m}")),
            Some(10.0)
        );
        let cache = "{mount=\"metrics-unit\",cache=\"attr\"}";
        assert_eq!(
            sample(&text, &format!("nfsgw_cache_hits_total{cache}")),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, &format!("nfsgw_cache_misses_total{cache}")),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "nfsgw_plugin_failures_total{mount=\"metrics-unit\",reason=\"timeout\"}"
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &text,
                "nfsgw_plugin_failures_total{mount=\"metrics-unit\",reason=\"trap\"}"
            ),
            Some(0.0)
        );
        assert_eq!(plugin_failures(name), 1);
        assert_eq!(
            sample(&text, &format!("nfsgw_flush_queue_depth{m}")),
            Some(3.0)
        );
        assert_eq!(
            sample(&text, &format!("nfsgw_upload_failures_total{m}")),
            Some(2.0)
        );
        let rpc = "{program=\"nfs3\",procedure=\"GETATTR\"}";
        assert!(sample(&text, &format!("nfsgw_rpc_requests_total{rpc}")).unwrap() >= 1.0);
        assert!(
            text.contains("# TYPE nfsgw_rpc_duration_seconds histogram"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
