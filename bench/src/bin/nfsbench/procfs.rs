//! What the benchmark reads about a server process from Linux's /proc: resident memory now and
//! at its peak (the peak can be reset, so it covers one case), and CPU time used.

use std::fs;

use anyhow::{anyhow, Context, Result};

/// Clock ticks per second of /proc/PID/stat times (Linux's USER_HZ, 100 on every architecture
/// it exports to user space this way).
const TICKS: f64 = 100.0;

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
}

/// Resident set size now, in MiB.
pub fn rss_mib(pid: u32) -> Result<f64> {
    Ok(status_kib(pid, "VmRSS:")? as f64 / 1024.0)
}

/// Peak resident set size since start or the last `reset_peak`, in MiB.
pub fn peak_mib(pid: u32) -> Result<f64> {
    Ok(status_kib(pid, "VmHWM:")? as f64 / 1024.0)
}

/// Resets the peak to the current resident size (clear_refs 5, Linux 4.0+).
pub fn reset_peak(pid: u32) -> Result<()> {
    fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak RSS of {pid}"))
}

/// User plus system CPU seconds the process has used.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short stat"))?
            .parse::<f64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) / TICKS)
}

/// Drops the page cache (root only; used with --cold).
pub fn drop_caches() -> Result<()> {
    fs::write("/proc/sys/vm/drop_caches", "3").context("writing /proc/sys/vm/drop_caches")
}
