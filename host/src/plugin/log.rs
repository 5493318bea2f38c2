//! A plugin's output: the `log` capability and its instances' stderr, attributed to its mount
//! and bounded.
//!
//! Both go to the host's log through one `PluginLog` per mount, which keeps at most
//! `MAX_LINE` bytes of a line (saying how many it cut), escapes control characters (so a
//! plugin cannot forge log lines or send terminal escapes), and lets through at most
//! `LINES_PER_SECOND` lines a second; the lines over that are dropped and counted, and the
//! count is logged with the next line let through. So a plugin that writes megabytes per call
//! costs the host's log a few kilobytes a second. Stdout is not connected.

use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::bindings::nfsgw::backend::log::{Host, Level};
use super::runtime::HostState;

/// The bytes of one line that reach the host's log.
const MAX_LINE: usize = 1024;
/// Lines of one mount's plugin output (log and stderr together) let through per second.
const LINES_PER_SECOND: u32 = 50;

/// One mount's plugin output, rate-limited.
pub struct PluginLog {
    mount: Arc<str>,
    window: Mutex<Window>,
}

/// The current one-second window: lines let through, and lines dropped since the last notice.
struct Window {
    started: Instant,
    lines: u32,
    dropped: u64,
}

impl PluginLog {
    pub fn new(mount: Arc<str>) -> Arc<PluginLog> {
        Arc::new(PluginLog {
            mount,
            window: Mutex::new(Window {
                started: Instant::now(),
                lines: 0,
                dropped: 0,
            }),
        })
    }

    /// Logs one line (without its newline) from `source` ("log" or "stderr"), if the rate
    /// allows it; `missing` bytes of it were already cut.
    fn line(&self, level: Level, source: &'static str, bytes: &[u8], missing: usize) {
        let dropped = {
            let mut window = self.window.lock().unwrap();
            if window.started.elapsed() >= Duration::from_secs(1) {
                window.started = Instant::now();
                window.lines = 0;
            }
            if window.lines >= LINES_PER_SECOND {
                window.dropped += 1;
                return;
            }
            window.lines += 1;
            std::mem::take(&mut window.dropped)
        };
        let mount = &*self.mount;
        if dropped > 0 {
            tracing::warn!(
                target: "plugin",
                mount,
                "{dropped} lines of the plugin's output dropped (more than {LINES_PER_SECOND} a second)"
            );
        }
        let text = printable(bytes, missing);
        match level {
            Level::Trace => tracing::trace!(target: "plugin", mount, source, "{text}"),
            Level::Debug => tracing::debug!(target: "plugin", mount, source, "{text}"),
            Level::Info => tracing::info!(target: "plugin", mount, source, "{text}"),
            Level::Warn => tracing::warn!(target: "plugin", mount, source, "{text}"),
            Level::Error => tracing::error!(target: "plugin", mount, source, "{text}"),
        }
    }
}

/// At most `MAX_LINE` bytes of a line, control characters escaped, and how much was cut
/// (`missing` bytes of it before it got here).
fn printable(bytes: &[u8], missing: usize) -> String {
    let kept = &bytes[..bytes.len().min(MAX_LINE)];
    let mut text = String::with_capacity(kept.len() + 32);
    for c in String::from_utf8_lossy(kept).chars() {
        if c.is_control() && c != '\t' {
            let _ = write!(text, "\\u{{{:x}}}", c as u32);
        } else {
            text.push(c);
        }
    }
    let cut = bytes.len() - kept.len() + missing;
    if cut > 0 {
        let _ = write!(text, " [{cut} bytes cut]");
    }
    text
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        for line in message.as_bytes().split(|&b| b == b'\n') {
            self.log.line(level, "log", line, 0);
        }
    }
}

/// An instance's stderr: whole lines go to the mount's `PluginLog`. The line being written is
/// kept (at most `MAX_LINE` bytes of it) across writes and across the streams the guest opens.
#[derive(Clone)]
pub struct Stderr {
    log: Arc<PluginLog>,
    partial: Arc<Mutex<Partial>>,
}

#[derive(Default)]
struct Partial {
    kept: Vec<u8>,
    /// Bytes of the line beyond what is kept.
    cut: usize,
}

impl Stderr {
    pub fn new(log: Arc<PluginLog>) -> Stderr {
        Stderr {
            log,
            partial: Arc::default(),
        }
    }

    fn write(&self, bytes: &[u8]) {
        let mut partial = self.partial.lock().unwrap();
        let mut rest = bytes;
        loop {
            let (piece, ended) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], true),
                None => (rest, false),
            };
            let room = MAX_LINE.saturating_sub(partial.kept.len());
            let take = piece.len().min(room);
            partial.kept.extend_from_slice(&piece[..take]);
            partial.cut += piece.len() - take;
            if !ended {
                return;
            }
            let Partial { kept, cut } = std::mem::take(&mut *partial);
            self.log.line(Level::Info, "stderr", &kept, cut);
            rest = &rest[piece.len() + 1..];
        }
    }
}

impl IsTerminal for Stderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Stderr {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for Stderr {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_and_escaped() {
        assert_eq!(printable(b"plain\tline", 0), "plain\tline");
        assert_eq!(printable(b"fake\r\x1b[31m", 0), "fake\\u{d}\\u{1b}[31m");
        let long = vec![b'x'; MAX_LINE + 10];
        let text = printable(&long, 5);
        assert!(text.ends_with(" [15 bytes cut]"), "{text}");
        assert_eq!(text.len(), MAX_LINE + " [15 bytes cut]".len());
    }

    #[test]
    fn stderr_keeps_a_bounded_line_across_writes_and_the_rate_is_bounded() {
        let log = PluginLog::new("m".into());
        let stderr = Stderr::new(log.clone());
        stderr.write(b"half ");
        stderr.clone().write(&vec![b'y'; 3 * MAX_LINE]);
        assert_eq!(stderr.partial.lock().unwrap().kept.len(), MAX_LINE);
        assert_eq!(stderr.partial.lock().unwrap().cut, 2 * MAX_LINE + 5);
        stderr.write(b"\nnext");
        assert_eq!(stderr.partial.lock().unwrap().kept, b"next");
        for _ in 0..3 * LINES_PER_SECOND {
            stderr.write(b"line\n");
        }
        let window = log.window.lock().unwrap();
        if window.started.elapsed() < Duration::from_secs(1) {
            assert_eq!(window.lines, LINES_PER_SECOND);
            assert!(window.dropped >= u64::from(LINES_PER_SECOND));
        }
    }
}
