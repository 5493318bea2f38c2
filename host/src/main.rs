//! `nfsgw`: serve directories, buckets and repos over NFSv3, each mount backed by a sandboxed
//! WebAssembly plugin.
//!
//! This file is the command line: it parses arguments, sets up logging, and wires the config,
//! the plugin runtime, the gateway core and the NFS front together.

mod config;
mod demo;
mod gateway;
mod nfs;
mod plugin;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use config::{Config, Source};
use plugin::runtime::Runtime;

#[derive(Parser)]
#[command(name = "nfsgw", version, about = "A WASM-pluggable NFSv3 gateway")]
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
    },
    /// Check a config: parse it, load every plugin and call its init, then exit.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
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
        Some(Command::Demo { dir }) => {
            let (text, dir) = demo::prepare(dir)?;
            println!("nfsgw demo: serving {} as /demo", dir.display());
            serve(&text, "demo config").await
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
            )
            .await?;
            println!("{file}: OK, {} mount(s)", gateway.mounts().len());
            Ok(())
        }
        None => {
            let config = cli
                .config
                .context("give --config <mounts.toml> (or try `nfsgw demo`)")?;
            let text = read(&config)?;
            serve(&text, &config.display().to_string()).await
        }
    }
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))
}

async fn serve(text: &str, file: &str) -> Result<()> {
    let config = Config::parse(text, file)?;
    let runtime = Runtime::new()?;
    let gateway =
        Arc::new(gateway::mounts::start(&runtime, &config, &Source { file, text }).await?);
    let server = nfs::NfsServer::bind(config.server.listen, gateway.clone()).await?;
    let addr = server.local_addr();
    println!("nfsgw: serving NFSv3 + MOUNT on {addr}");
    for m in gateway.mounts() {
        let access = if m.read_only {
            "read-only"
        } else {
            "read-write"
        };
        println!("  /{:<16} plugin {:<8} {access}", m.name, m.plugin_name);
        println!("    Linux: {}", demo::linux_mount_line(addr, &m.name));
        println!("    macOS: {}", demo::macos_mount_line(addr, &m.name));
    }
    tracing::info!(%addr, mounts = gateway.mounts().len(), "nfsgw ready");
    tokio::select! {
        result = server.serve() => result,
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; shutting down");
            Ok(())
        }
    }
}
