//! The `log` capability: a plugin's log lines, attributed to its mount.

use super::bindings::nfsgw::backend::log::{Host, Level};
use super::runtime::HostState;

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let mount = &*self.mount;
        match level {
            Level::Trace => tracing::trace!(target: "plugin", mount, "{message}"),
            Level::Debug => tracing::debug!(target: "plugin", mount, "{message}"),
            Level::Info => tracing::info!(target: "plugin", mount, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", mount, "{message}"),
            Level::Error => tracing::error!(target: "plugin", mount, "{message}"),
        }
    }
}
