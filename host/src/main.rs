//! `nfsgw`: serve directories, buckets and repos over NFSv3, each mount backed by a sandboxed
//! WebAssembly plugin.
//!
//! This file is the command line: it parses arguments, sets up logging, and wires the config,
//! the plugin runtime, the gateway core, the NFS front and the portmapper together.

use nfsgw::{
    admin, config, conformance, connections, demo, gateway, mount_cmd, nfs, plugin, portmap,
};

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use config::{Config, Source};
use plugin::runtime::Runtime;

/// What `nfsgw --version` prints: the release, the commit built and the plugin interface, so
/// that a bug report names exactly what ran.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NFSGW_GIT_COMMIT"),
    ", plugin interface ",
    env!("NFSGW_WIT_PACKAGE"),
    ")"
);

#[derive(Parser)]
#[command(name = "nfsgw", version = VERSION, about = "A WASM-pluggable NFSv3 gateway")]
struct Cli {
    /// The mounts config (TOML) to serve.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a tracing directive list.
    #[arg(long, default_value = "info", global = true)]
    log_level: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a demo directory with the built-in demo config and print how to mount it.
    Demo {
        /// The directory to serve (created with a few sample files if missing).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Where to serve NFS and MOUNT (port 0 picks a free port).
        #[arg(long, default_value = demo::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
        /// Where to answer as the portmapper, or "off".
        #[arg(long, default_value = config::DEFAULT_PORTMAP)]
        portmap: String,
    },
    /// Work with plugins.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Check a config: parse it, load every plugin and call its init, then exit.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Mount an export of a running nfsgw with the OS's NFS client: prints the mount command,
    /// then runs it (through sudo when not root).
    Mount {
        /// The mount's name in the config (the export is host:/<name>).
        name: String,
        /// Where to mount it: a directory, or a drive such as Z: on Windows.
        mountpoint: String,
        /// Take the server's address from this config's `server.listen`.
        #[arg(long, short, conflicts_with = "server")]
        config: Option<PathBuf>,
        /// The server's HOST:PORT [default: 127.0.0.1:20490].
        #[arg(long)]
        server: Option<String>,
        /// Print the command, do not run it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Ask a running nfsgw how it is doing, through its admin listener (`server.admin`).
    Status {
        /// Take the admin listener's address from this config's `server.admin`.
        #[arg(long, short, conflicts_with = "admin")]
        config: Option<PathBuf>,
        /// The admin listener's HOST:PORT [default: 127.0.0.1:9464].
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
        /// The environment variable holding the admin token [default: the config's
        /// `admin_token_env`, else NFSGW_ADMIN_TOKEN when it is set].
        #[arg(long, value_name = "VARIABLE")]
        token_env: Option<String>,
    },
    /// Ask a running nfsgw to upload every staged write now (S3 mounts), through its admin
    /// listener; waits until it is done. Exits 1 if some files could not be uploaded.
    Flush {
        /// Take the admin listener's address from this config's `server.admin`.
        #[arg(long, short, conflicts_with = "admin")]
        config: Option<PathBuf>,
        /// The admin listener's HOST:PORT [default: 127.0.0.1:9464].
        #[arg(long)]
        admin: Option<std::net::SocketAddr>,
        /// The environment variable holding the admin token [default: the config's
        /// `admin_token_env`, else NFSGW_ADMIN_TOKEN when it is set].
        #[arg(long, value_name = "VARIABLE")]
        token_env: Option<String>,
    },
    /// Unmount an nfsgw mount: prints the unmount command, then runs it.
    Umount {
        /// The directory, or the drive such as Z: on Windows.
        mountpoint: String,
        /// Print the command, do not run it.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load a plugin, check its interface version and capabilities, and run the conformance
    /// suite against a scratch mount of it. Exits 1 if a check fails.
    Check {
        /// A bundled plugin's name, or the path of a .wasm component.
        plugin: String,
        /// A `[mount.config]` setting for the plugin, as key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// A `[mount.s3]` setting granting the scratch mount a bucket, as key=value
        /// (repeatable), e.g. --s3 bucket=scratch --s3 endpoint=http://127.0.0.1:9000.
        #[arg(long = "s3", value_name = "KEY=VALUE")]
        s3: Vec<String>,
        /// A host the scratch mount's plugin may reach (an `allow_hosts` entry; repeatable).
        #[arg(long = "allow-host", value_name = "HOST[:PORT]")]
        allow_hosts: Vec<String>,
        /// A secret granted to the scratch mount, as NAME=env:VARIABLE or NAME=file:PATH
        /// (repeatable).
        #[arg(long = "secret", value_name = "NAME=SOURCE")]
        secrets: Vec<String>,
    },
}

/// `KEY=VALUE` arguments as pairs; `flag` names the option in errors.
fn key_values(args: &[String], flag: &str) -> Result<Vec<(String, String)>> {
    args.iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("{flag} {kv:?}: expected KEY=VALUE"))
        })
        .collect()
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log_level))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("nfsgw: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Some(Command::Demo {
            dir,
            listen,
            portmap,
        }) => {
            let (text, dir) = demo::prepare(dir, &demo::Addresses { listen, portmap })?;
            println!("nfsgw demo: serving {} as /demo", dir.display());
            println!(
                "nfsgw demo: every client acts as the directory's owner, so writes work: once \
                 mounted, try `echo hello > /mnt/demo/hello.txt`"
            );
            serve(&text, "demo config", false).await
        }
        Some(Command::Plugin {
            command:
                PluginCommand::Check {
                    plugin,
                    settings,
                    s3,
                    allow_hosts,
                    secrets,
                },
        }) => {
            let grants = conformance::ScratchGrants {
                settings: key_values(&settings, "--set")?,
                s3: key_values(&s3, "--s3")?,
                allow_hosts,
                secrets: key_values(&secrets, "--secret")?,
            };
            let report = conformance::check(&plugin, &grants).await?;
            print!("{}", report.render());
            if report.failed() > 0 {
                anyhow::bail!("{plugin}: {} conformance check(s) failed", report.failed());
            }
            Ok(())
        }
        Some(Command::CheckConfig { config }) => {
            let text = read(&config)?;
            let file = config.display().to_string();
            let parsed = Config::parse(&text, &file)?;
            let gateway = gateway::mounts::start(
                &Runtime::new()?,
                &parsed,
                &Source {
                    file: &file,
                    text: &text,
                },
                None,
            )
            .await?;
            println!("{file}: OK, {} mount(s)", gateway.mounts().len());
            Ok(())
        }
        Some(Command::Mount {
            name,
            mountpoint,
            config,
            server,
            dry_run,
        }) => {
            let (target, locks) = mount_target(config, server, &name)?;
            let run = mount_cmd::Run {
                os: mount_cmd::Os::current(),
                dry_run,
            };
            run.mount(&target, &name, &mountpoint, locks)
        }
        Some(Command::Status {
            config,
            admin,
            token_env,
        }) => {
            let (addr, token) = admin_target(admin, config, token_env)?;
            let status = admin::fetch_status(addr, token.as_deref()).await?;
            print!("{}", admin::render(&status));
            Ok(())
        }
        Some(Command::Flush {
            config,
            admin,
            token_env,
        }) => {
            let (addr, token) = admin_target(admin, config, token_env)?;
            match admin::request_flush(addr, token.as_deref()).await?.left {
                0 => {
                    println!("nfsgw: every staged file is uploaded");
                    Ok(())
                }
                left => anyhow::bail!(
                    "{left} file(s) could not be uploaded; they stay staged and are tried again"
                ),
            }
        }
        Some(Command::Umount {
            mountpoint,
            dry_run,
        }) => {
            let run = mount_cmd::Run {
                os: mount_cmd::Os::current(),
                dry_run,
            };
            run.umount(&mountpoint)
        }
        None => {
            let config = cli
                .config
                .context("give --config <mounts.toml> (or try `nfsgw demo`)")?;
            let text = read(&config)?;
            serve(&text, &config.display().to_string(), true).await
        }
    }
}

/// The server `nfsgw mount` mounts from: `--server`, the `listen` address of `--config`, or
/// the default address; and where the mount's file locks go: as `--config` says (the mount's
/// `locks`, and whether the portmapper is on port 111), else to nfsgw, as a default config has
/// it.
fn mount_target(
    config: Option<PathBuf>,
    server: Option<String>,
    name: &str,
) -> Result<(mount_cmd::Target, mount_cmd::Locks)> {
    let Some(path) = config else {
        let target = mount_cmd::Target::parse(server.as_deref().unwrap_or("127.0.0.1:20490"))?;
        return Ok((target, mount_cmd::Locks::Served));
    };
    let file = path.display().to_string();
    let parsed = Config::parse(&read(&path)?, &file)?;
    let listen = parsed.server.listen;
    if listen.port() == 0 {
        anyhow::bail!(
            "{file}: server.listen has port 0 (nfsgw picks a free port at start): give \
             --server HOST:PORT with the port nfsgw printed"
        );
    }
    let name = name.trim_start_matches('/');
    let Some(mount) = parsed.mounts.iter().find(|m| m.name() == name) else {
        let names: Vec<&str> = parsed.mounts.iter().map(|m| m.name()).collect();
        anyhow::bail!(
            "{file} has no mount {name:?}; its mounts: {}",
            names.join(", ")
        );
    };
    if mount_cmd::Os::current() == mount_cmd::Os::Windows
        && parsed.server.portmap.map(|a| a.port()) != Some(111)
    {
        eprintln!(
            "nfsgw: warning: Windows' mount.exe asks the portmapper on port 111, and {file} \
             does not serve it there (server.portmap)"
        );
    }
    Ok((
        mount_cmd::Target::of_listener(listen),
        mount_cmd::Locks::of(mount.locks, parsed.server.portmap),
    ))
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))
}

/// Serves a config. A portmapper that cannot be bound stops nfsgw when `portmap_required`;
/// otherwise (the demo, which has no config to change) nfsgw serves without it and says so.
async fn serve(text: &str, file: &str, portmap_required: bool) -> Result<()> {
    let config = Config::parse(text, file)?;
    let runtime = Runtime::new()?;
    let state_dir = config.server.state_dir_for(file);
    let gateway = Arc::new(
        gateway::mounts::start(&runtime, &config, &Source { file, text }, Some(&state_dir)).await?,
    );
    let server = nfs::NfsServer::bind(
        config.server.listen,
        gateway.clone(),
        nfs_settings(&config),
        &state_dir,
    )
    .await?;
    let addr = server.local_addr();
    let portmapper = match config.server.portmap {
        Some(at) => match portmap::Portmapper::bind(at, addr, server.serves_udp()).await {
            Ok(portmapper) => {
                println!("nfsgw: portmapper on {} (tcp+udp)", portmapper.local_addr());
                Some(portmapper)
            }
            Err(e) if !portmap_required => {
                println!("nfsgw: serving without a portmapper: {e:#}");
                None
            }
            Err(e) => return Err(e),
        },
        None => None,
    };
    let admin = match config.server.admin_addr() {
        Some(at) => {
            let token = config.server.admin_token(&Source { file, text })?;
            let instance = admin::Instance {
                gateway: gateway.clone(),
                listen: addr,
                portmap: portmapper.as_ref().map(|p| p.local_addr()),
                started: std::time::Instant::now(),
            };
            let admin = admin::Admin::bind(at, instance, token).await?;
            println!(
                "nfsgw: admin listener on http://{} (/metrics, /status)",
                admin.local_addr()
            );
            Some(admin)
        }
        None => None,
    };
    let on_111 = portmapper.as_ref().map(|p| p.local_addr().port()) == Some(111);
    println!("nfsgw: serving NFSv3 + MOUNT on {addr}");
    let portmap = portmapper.as_ref().map(|p| p.local_addr());
    for m in gateway.mounts() {
        let serves_locks = config.mounts.iter().any(|c| c.name() == m.name && c.locks);
        let locks = mount_cmd::Locks::of(serves_locks, portmap);
        let access = if m.is_read_only() {
            "read-only"
        } else {
            "read-write"
        };
        println!("  /{:<16} plugin {:<8} {access}", m.name, m.plugin_name);
        println!(
            "    Linux: {}",
            mount_cmd::linux_mount_line(addr, &m.name, locks)
        );
        println!(
            "    macOS: {}",
            mount_cmd::macos_mount_line(addr, &m.name, locks)
        );
        if on_111 {
            println!(
                "    Windows: {}",
                mount_cmd::windows_mount_line(addr, &m.name, locks)
            );
        }
    }
    tracing::info!(%addr, mounts = gateway.mounts().len(), "nfsgw ready");
    let portmapper = async {
        match portmapper {
            Some(portmapper) => portmapper.serve().await,
            None => std::future::pending().await,
        }
    };
    let admin = async {
        match admin {
            Some(admin) => admin.serve().await,
            None => std::future::pending().await,
        }
    };
    let flusher = tokio::spawn(gateway.clone().run_flusher());
    let outcome = tokio::select! {
        result = server.serve() => result,
        result = portmapper => result,
        result = admin => result,
        signal = shutdown_signal() => {
            tracing::info!("{signal}; shutting down");
            Ok(())
        }
    };
    flusher.abort();
    flush_before_exit(&gateway).await;
    gateway.flush_journals().await;
    outcome
}

/// The NFS front's settings, with the connection limit kept to half the open file limit
/// (raised to its hard limit first), so that plugins and files have descriptors left.
fn nfs_settings(config: &Config) -> nfs::Settings {
    let mut settings = nfs::Settings::from_config(config);
    if let Some(files) = connections::raise_descriptor_limit() {
        let room = usize::try_from(files / 2).unwrap_or(usize::MAX).max(1);
        if settings.connections.total > room {
            println!(
                "nfsgw: server.max_connections lowered to {room}: the open file limit is {files}"
            );
            settings.connections.total = room;
        }
    }
    settings
}

/// The variable `nfsgw status` and `nfsgw flush` take the admin token from when neither
/// `--token-env` nor a config names one.
const DEFAULT_ADMIN_TOKEN_ENV: &str = "NFSGW_ADMIN_TOKEN";

/// The admin listener to ask and the token to show it: the address from `--admin`, else the
/// config's `server.admin`, else the default; the token from the variable `--token-env`
/// names, else the config's `admin_token_env`, else `NFSGW_ADMIN_TOKEN` if it is set.
fn admin_target(
    admin: Option<std::net::SocketAddr>,
    config: Option<PathBuf>,
    token_env: Option<String>,
) -> Result<(std::net::SocketAddr, Option<String>)> {
    let parsed = match &config {
        Some(path) => {
            let file = path.display().to_string();
            Some((Config::parse(&read(path)?, &file)?, file))
        }
        None => None,
    };
    let addr = match (admin, &parsed) {
        (Some(addr), _) => addr,
        (None, Some((parsed, file))) => parsed.server.admin_addr().with_context(|| {
            format!(
                "{file} has no admin listener: set `admin = \"{}\"` in its [server] table",
                config::DEFAULT_ADMIN
            )
        })?,
        (None, None) => config::DEFAULT_ADMIN.parse().expect("a valid address"),
    };
    let configured = parsed
        .as_ref()
        .and_then(|(p, _)| p.server.admin_token_env.as_ref())
        .map(|e| e.get_ref().clone());
    let token = match token_env.or(configured) {
        Some(name) => {
            let token = std::env::var(&name).with_context(|| {
                format!("the admin token's environment variable {name} is not set")
            })?;
            Some(token.trim().to_string())
        }
        None => std::env::var(DEFAULT_ADMIN_TOKEN_ENV)
            .ok()
            .map(|t| t.trim().to_string()),
    };
    Ok((addr, token))
}

/// Uploads staged writes before the process ends, saying how far it got; a second signal
/// stops waiting (what is left stays staged and is uploaded at the next start).
async fn flush_before_exit(gateway: &gateway::Gateway) {
    let (files, bytes) = gateway.pending_uploads();
    if files == 0 {
        return;
    }
    println!("nfsgw: uploading {files} staged file(s), {bytes} bytes, before exiting (signal again to stop waiting)");
    let progress = async {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let (files, bytes) = gateway.pending_uploads();
            println!("nfsgw: still uploading: {files} file(s), {bytes} bytes staged");
        }
    };
    tokio::select! {
        left = gateway.flush_all(3) => {
            if left == 0 {
                println!("nfsgw: every staged file is uploaded");
            } else {
                println!("nfsgw: {left} file(s) could not be uploaded; they stay staged and are uploaded at the next start");
            }
        }
        _ = progress => {}
        _ = shutdown_signal() => {
            let (files, _) = gateway.pending_uploads();
            println!("nfsgw: stopped waiting; {files} file(s) stay staged for the next start");
        }
    }
}

/// Resolves when nfsgw is asked to stop: Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "interrupted";
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted",
            _ = term.recv() => "terminated",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "interrupted"
    }
}
