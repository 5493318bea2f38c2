//! Loading plugin components and calling them safely.
//!
//! `Runtime` owns the wasmtime engine (one per process, with an epoch ticker that enforces call
//! deadlines) and the linker with every host capability. `MountPlugin` is one mount's pool of
//! instances: a call takes an idle instance (or makes one, calling `init`), runs under the
//! mount's deadline and memory limit, and gives the instance back. A call is a future on the
//! thread of the request that made it, so a short call costs no thread handoff; the plugin
//! yields to other requests at every epoch tick, and capabilities that wait on the network
//! await instead of blocking. A call that traps, panics in the host or runs out of time fails
//! with `Error::Io` and its instance is thrown away; the next call gets a fresh one, and other
//! calls and mounts are not disturbed. An instance's memories and tables together stay within
//! the mount's `memory_mb`, the host buffers its calls fill within `host_buffers_mb`, and its
//! stderr and log lines go through the mount's rate-limited `PluginLog`.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use futures_util::FutureExt;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::bindings::types::{Attrs, Error, MountInfo};
use super::bindings::{Backend, Plugin, PluginPre, BACKEND_INTERFACE};
use super::host_fs::Grants;
use super::http::Outbound;
use super::log::{PluginLog, Stderr};
use super::memory::{HostBuffers, InstanceMemory};
use super::secrets::Secrets;
use super::staged_file::StagedFile;
use crate::config::Limits;
use crate::metrics;
use crate::objstore::BlobStore;

/// How often the engine's epoch advances: the granularity of call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The per-store state every host capability works on.
pub struct HostState {
    pub mount: Arc<str>,
    pub grants: Arc<Grants>,
    /// The object store the mount grants, if any.
    pub blobs: Option<Arc<BlobStore>>,
    /// Outbound HTTP to the hosts the mount allows, if it allows any.
    pub outbound: Option<Arc<Outbound>>,
    /// The secrets the mount grants.
    pub secrets: Arc<Secrets>,
    /// The mount's budget of host buffers for calls in flight.
    pub buffers: Arc<HostBuffers>,
    /// The most one call's result may hold: what the instance's memory could take.
    pub memory_limit: usize,
    /// Where the plugin's log lines go.
    pub(super) log: Arc<PluginLog>,
    /// When the current call started, and how much of it was spent waiting in host
    /// capabilities: the deadline counts only the rest, the plugin's own time.
    call_started: Instant,
    pub host_time: Duration,
    timeout: Duration,
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    memory: InstanceMemory,
}

impl HostState {
    fn begin_call(&mut self) {
        self.call_started = Instant::now();
        self.host_time = Duration::ZERO;
    }

    /// The plugin's own time in the current call.
    fn guest_time(&self) -> Duration {
        self.call_started.elapsed().saturating_sub(self.host_time)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl super::bindings::types::Host for HostState {}

/// The process-wide engine and linker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    pub fn new() -> anyhow::Result<Runtime> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .cache(compile_cache());
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)?;
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (weak_engine, stop) = (engine.weak(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("nfsgw-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match weak_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })?;
        Ok(Runtime {
            engine,
            linker,
            stop_ticker,
        })
    }

    /// Compiles a component and checks that it is a plugin of this interface version.
    pub fn load(&self, what: &str, wasm: &[u8]) -> anyhow::Result<PluginPre<HostState>> {
        let component = Component::new(&self.engine, wasm)
            .map_err(|e| anyhow!("{what} is not a valid WebAssembly component: {e:#}"))?;
        check_interface(&self.engine, &component)
            .with_context(|| format!("{what} cannot be used"))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow!("{what} needs something this host does not provide: {e:#}"))?;
        PluginPre::new(pre)
            .map_err(|e| anyhow!("{what} does not match the nfsgw plugin world: {e:#}"))
    }
}

/// The on-disk cache of compiled components, so a large plugin (a Python or JavaScript one
/// takes seconds to compile) starts fast the second time. Without a usable directory, plugins
/// are compiled at every start. On Windows the directory is under %LOCALAPPDATA%.
fn compile_cache() -> Option<wasmtime::Cache> {
    let home = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("LOCALAPPDATA").map(std::path::PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")))?;
    let mut cache = wasmtime::CacheConfig::new();
    cache.with_directory(home.join("nfsgw/compiled"));
    wasmtime::Cache::new(cache)
        .inspect_err(|e| tracing::warn!("compiled plugins will not be cached: {e:#}"))
        .ok()
}

/// Refuses a component that does not export this host's version of the backend interface,
/// naming the version it has.
fn check_interface(engine: &Engine, component: &Component) -> anyhow::Result<()> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    if exports.iter().any(|e| e == BACKEND_INTERFACE) {
        return Ok(());
    }
    let (package, _) = BACKEND_INTERFACE.split_once('@').unwrap();
    if let Some(other) = exports
        .iter()
        .find(|e| e.starts_with(&format!("{package}@")))
    {
        bail!("it implements {other}, but this nfsgw implements {BACKEND_INTERFACE}: rebuild it against this nfsgw's wit/");
    }
    bail!(
        "it does not export {BACKEND_INTERFACE} (its exports: {})",
        exports.join(", ")
    )
}

/// What a mount grants its plugin.
pub struct Sandbox {
    pub grants: Arc<Grants>,
    pub blobs: Option<Arc<BlobStore>>,
    pub outbound: Option<Arc<Outbound>>,
    pub secrets: Arc<Secrets>,
    pub limits: Limits,
}

/// What every instance of a mount shares: its log and its budget of host buffers.
struct Shared {
    log: Arc<PluginLog>,
    buffers: Arc<HostBuffers>,
}

impl Shared {
    fn new(mount: &Arc<str>, limits: &Limits) -> Shared {
        Shared {
            log: PluginLog::new(mount.clone()),
            buffers: HostBuffers::new(limits.host_buffers()),
        }
    }
}

struct Instance {
    store: Store<HostState>,
    plugin: Plugin,
}

/// One mount's plugin: its instance pool, limits and what `init` said.
pub struct MountPlugin {
    mount: Arc<str>,
    engine: Engine,
    pre: PluginPre<HostState>,
    sandbox: Sandbox,
    shared: Shared,
    config: Vec<(String, String)>,
    idle: Mutex<Vec<Instance>>,
    permits: Arc<Semaphore>,
    /// The pool's largest size.
    instances: usize,
    info: MountInfo,
}

impl MountPlugin {
    /// Makes the first instance and calls `init`; its error is the mount's startup error.
    pub async fn start(
        runtime: &Runtime,
        mount: &str,
        pre: PluginPre<HostState>,
        sandbox: Sandbox,
        mut config: Vec<(String, String)>,
    ) -> anyhow::Result<Arc<MountPlugin>> {
        let mount: Arc<str> = mount.into();
        let engine = runtime.engine.clone();
        let shared = Shared::new(&mount, &sandbox.limits);
        let (first, info) = new_instance(&engine, &pre, &mount, &sandbox, &shared, &config).await?;
        // Later instances start with what the first one pinned (a branch's commit, say).
        for (key, value) in &info.pinned_config {
            config.retain(|(k, _)| k != key);
            config.push((key.clone(), value.clone()));
        }
        // A plugin that keeps its state in memory may ask for fewer instances than the limit.
        let instances = info.max_instances.map_or(sandbox.limits.instances, |max| {
            sandbox.limits.instances.min(max.max(1) as usize)
        });
        let permits = Arc::new(Semaphore::new(instances));
        metrics::plugin_instances_set(&mount, instances);
        Ok(Arc::new(MountPlugin {
            mount,
            engine,
            pre,
            sandbox,
            shared,
            config,
            idle: Mutex::new(vec![first]),
            permits,
            instances,
            info,
        }))
    }

    pub fn info(&self) -> &MountInfo {
        &self.info
    }

    /// The object store the mount grants, if any.
    pub fn blobs(&self) -> Option<&Arc<BlobStore>> {
        self.sandbox.blobs.as_ref()
    }

    /// The directories the mount grants.
    pub fn grants(&self) -> &Arc<Grants> {
        &self.sandbox.grants
    }

    /// Calls the plugin's `commit` with a staged file lent for the call.
    pub async fn commit(
        self: &Arc<Self>,
        path: String,
        file: Arc<crate::copy_file::CopyFile>,
        size: u64,
    ) -> Result<Attrs, Error> {
        self.call("commit", move |b, s| {
            Box::pin(async move {
                let staged = s.data_mut().table.push(StagedFile { file, size })?;
                let borrowed = wasmtime::component::Resource::new_borrow(staged.rep());
                let result = b.call_commit(&mut *s, &path, borrowed).await;
                s.data_mut().table.delete(staged)?;
                result
            })
        })
        .await
    }

    /// (largest number of instances, instances alive now: idle or in a call).
    pub fn pool(&self) -> (usize, usize) {
        let busy = self.instances - self.permits.available_permits().min(self.instances);
        (self.instances, self.idle.lock().unwrap().len() + busy)
    }

    /// Runs `f` on an instance under the mount's limits. `op` names the call in logs.
    pub async fn call<R, F>(self: &Arc<Self>, op: &'static str, f: F) -> Result<R, Error>
    where
        R: Send + 'static,
        F: for<'a> FnOnce(&'a Backend, &'a mut Store<HostState>) -> CallFuture<'a, R> + Send,
    {
        let permit = self.permits.acquire().await.map_err(|_| Error::Io)?;
        let call = std::pin::pin!(async {
            let _permit = permit;
            let idle = self.idle.lock().unwrap().pop();
            let mut instance = match idle {
                Some(instance) => instance,
                None => self.fresh_instance().await?,
            };
            instance.store.data_mut().begin_call();
            instance.store.set_epoch_deadline(1);
            let outcome = f(instance.plugin.nfsgw_backend_backend(), &mut instance.store).await;
            if outcome.is_ok() {
                self.idle.lock().unwrap().push(instance);
            }
            outcome
        });
        // A panic in a host capability fails this call only; its instance, inside the future,
        // is dropped with it.
        let outcome = AssertUnwindSafe(call).catch_unwind().await;
        metrics::plugin_call(&self.mount, op);
        match outcome {
            Ok(Ok(result)) => {
                if let Err(e) = &result {
                    metrics::plugin_call_error(&self.mount, e.name());
                }
                result
            }
            Ok(Err(trap)) => {
                let why = match trap.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::Interrupt) => metrics::Failure::Timeout,
                    _ => metrics::Failure::Trap,
                };
                metrics::plugin_failure(&self.mount, why);
                tracing::error!(mount = %self.mount, op, "plugin call failed, instance replaced: {trap:#}");
                Err(Error::Io)
            }
            Err(panic) => {
                metrics::plugin_failure(&self.mount, metrics::Failure::Panic);
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(mount = %self.mount, op, "plugin call panicked in the host: {why}");
                Err(Error::Io)
            }
        }
    }

    async fn fresh_instance(&self) -> wasmtime::Result<Instance> {
        let (instance, _) = new_instance(
            &self.engine,
            &self.pre,
            &self.mount,
            &self.sandbox,
            &self.shared,
            &self.config,
        )
        .await
        .map_err(|e| wasmtime::format_err!("{e:#}"))?;
        Ok(instance)
    }
}

/// What a call's closure returns: the plugin call, borrowing the instance it runs on.
pub type CallFuture<'a, R> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<R, Error>>> + Send + 'a>>;

/// Instantiates the plugin in a new store and calls `init`.
async fn new_instance(
    engine: &Engine,
    pre: &PluginPre<HostState>,
    mount: &Arc<str>,
    sandbox: &Sandbox,
    shared: &Shared,
    config: &[(String, String)],
) -> anyhow::Result<(Instance, MountInfo)> {
    let (grants, limits) = (&sandbox.grants, &sandbox.limits);
    let mut wasi = WasiCtx::builder();
    // WASI sockets stay off (no TCP, UDP or name lookup): a plugin reaches the network only
    // through host capabilities that check an allow-list. Stderr goes to the mount's log.
    wasi.stderr(Stderr::new(shared.log.clone()));
    for grant in grants.iter() {
        let perms = if grant.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        wasi.preopened_dir(&grant.host, &grant.guest, perms)
            .map_err(|e| anyhow!("cannot grant {}: {e}", grant.host.display()))?;
    }
    let state = HostState {
        mount: mount.clone(),
        grants: grants.clone(),
        blobs: sandbox.blobs.clone(),
        outbound: sandbox.outbound.clone(),
        secrets: sandbox.secrets.clone(),
        buffers: shared.buffers.clone(),
        memory_limit: limits.memory(),
        log: shared.log.clone(),
        call_started: Instant::now(),
        host_time: Duration::ZERO,
        timeout: limits.call_timeout(),
        wasi: wasi.build(),
        table: ResourceTable::new(),
        memory: InstanceMemory::new(limits.memory()),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.memory);
    // At every tick the plugin yields to other requests, and its own time so far decides
    // whether it may go on: time spent waiting in host capabilities (an upload, say) is not
    // the plugin running away.
    store.epoch_deadline_callback(|store| {
        let state = store.data();
        if state.guest_time() >= state.timeout {
            return Err(wasmtime::Trap::Interrupt.into());
        }
        Ok(UpdateDeadline::Yield(1))
    });
    store.data_mut().begin_call();
    store.set_epoch_deadline(1);
    let plugin = pre
        .instantiate_async(&mut store)
        .await
        .map_err(|e| anyhow!("instantiating the plugin failed: {e:#}"))?;
    let info = plugin
        .nfsgw_backend_backend()
        .call_init(&mut store, config)
        .await
        .map_err(|e| anyhow!("the plugin's init trapped: {e:#}"))?
        .map_err(|e| anyhow!("the plugin refused its config: {e}"))?;
    Ok((Instance { store, plugin }, info))
}
