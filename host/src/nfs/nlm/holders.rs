//! The record, in the state directory, of the hosts that took locks: each client's address and
//! the address of nfsgw it reached (the name it knows nfsgw by). A host is recorded, durably,
//! before its first lock is granted; after a restart, the hosts the last run recorded are told
//! that nfsgw restarted (NSM's SM_NOTIFY, `crate::nfs::nsm::notify`) and may reclaim their
//! locks in the grace period. A host is recorded by its address alone, so that one client
//! cannot fill the record by giving many names; the record holds at most `MAX_HOSTS` hosts, and
//! a host beyond them is refused locks.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::nfs::state_file;

/// The file's name in the state directory.
pub const FILE: &str = "nlm-hosts";
/// Hosts recorded at most (this run's and the last run's not yet told).
pub const MAX_HOSTS: usize = 4096;
/// One line is two addresses.
const MAX_LINE: usize = 96;

/// A client host, and the address of nfsgw it reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    pub client: IpAddr,
    pub server: IpAddr,
}

/// The hosts recorded: this run's, and the last run's until they are told of the restart.
#[derive(Default)]
struct Hosts {
    current: BTreeMap<IpAddr, IpAddr>,
    previous: BTreeMap<IpAddr, IpAddr>,
}

impl Hosts {
    fn text(&self) -> String {
        let mut all = self.previous.clone();
        all.extend(&self.current);
        all.iter()
            .map(|(client, server)| format!("{client} {server}\n"))
            .collect()
    }
}

/// What [`Holders::record`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    Yes,
    /// The record is full, or could not be written: the host may not take locks.
    No,
}

/// The record and its file.
#[derive(Clone)]
pub struct Holders {
    path: Option<PathBuf>,
    hosts: Arc<Mutex<Hosts>>,
    /// Held while the file is written, so the last write has the newest hosts.
    writing: Arc<Mutex<()>>,
}

impl Holders {
    /// A record kept only in memory (no state directory: tests, fuzzing).
    pub fn in_memory() -> Holders {
        Holders {
            path: None,
            hosts: Arc::default(),
            writing: Arc::default(),
        }
    }

    /// Opens the record in `dir`: the hosts the last run recorded, which stay in the file until
    /// [`Holders::forget_previous`]. Blocks.
    pub fn open(dir: PathBuf) -> io::Result<(Holders, Vec<Host>)> {
        let path = dir.join(FILE);
        let text = state_file::read(&path, MAX_HOSTS * MAX_LINE)?.unwrap_or_default();
        let previous: BTreeMap<IpAddr, IpAddr> = text
            .lines()
            .filter_map(|line| {
                let (client, server) = line.split_once(' ')?;
                Some((client.parse().ok()?, server.parse().ok()?))
            })
            .take(MAX_HOSTS)
            .collect();
        let last_run = previous
            .iter()
            .map(|(&client, &server)| Host { client, server })
            .collect();
        let holders = Holders {
            path: Some(path),
            hosts: Arc::new(Mutex::new(Hosts {
                current: BTreeMap::new(),
                previous,
            })),
            writing: Arc::default(),
        };
        Ok((holders, last_run))
    }

    /// Records `host` before it takes its first lock of this run; writes the file on the
    /// blocking pool when the host is new.
    pub async fn record(&self, host: Host) -> Recorded {
        {
            let mut hosts = self.hosts.lock().unwrap();
            if hosts.current.contains_key(&host.client) {
                return Recorded::Yes;
            }
            let known = hosts.previous.contains_key(&host.client);
            if !known && hosts.current.len() + hosts.previous.len() >= MAX_HOSTS {
                tracing::warn!(client = %host.client, "lock holders' record full; locks refused");
                return Recorded::No;
            }
            hosts.current.insert(host.client, host.server);
        }
        match self.write().await {
            Ok(()) => Recorded::Yes,
            Err(e) => {
                tracing::warn!(client = %host.client, "cannot record a lock holder: {e}");
                self.hosts.lock().unwrap().current.remove(&host.client);
                Recorded::No
            }
        }
    }

    /// Drops the last run's hosts from the record, once they were told of the restart.
    pub async fn forget_previous(&self) {
        self.hosts.lock().unwrap().previous.clear();
        if let Err(e) = self.write().await {
            tracing::warn!("cannot update the lock holders' record: {e}");
        }
    }

    /// Writes the record's file with the hosts recorded now.
    async fn write(&self) -> io::Result<()> {
        let Some(path) = self.path.clone() else {
            return Ok(());
        };
        let (hosts, writing) = (self.hosts.clone(), self.writing.clone());
        crate::blocking::run(crate::blocking::DEADLINE, move || {
            let _writing = writing.lock().unwrap();
            let text = hosts.lock().unwrap().text();
            state_file::replace(&path, text.as_bytes())
        })
        .await
        .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(last: u8) -> Host {
        Host {
            client: IpAddr::from([10, 0, 0, last]),
            server: IpAddr::from([10, 0, 0, 1]),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hosts_recorded_in_one_run_are_the_next_run_last_hosts_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let (holders, last) = Holders::open(dir.path().into()).unwrap();
        assert!(last.is_empty());
        assert_eq!(holders.record(host(2)).await, Recorded::Yes);
        assert_eq!(holders.record(host(2)).await, Recorded::Yes);
        assert_eq!(holders.record(host(3)).await, Recorded::Yes);
        let (holders, last) = Holders::open(dir.path().into()).unwrap();
        assert_eq!(last, [host(2), host(3)]);
        // A host of the last run that locks again stays recorded once it is forgotten.
        assert_eq!(holders.record(host(3)).await, Recorded::Yes);
        holders.forget_previous().await;
        let (_, last) = Holders::open(dir.path().into()).unwrap();
        assert_eq!(last, [host(3)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_record_refuses_new_hosts_and_a_garbled_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "10.0.0.9 10.0.0.1\nnot an address\n").unwrap();
        let (holders, last) = Holders::open(dir.path().into()).unwrap();
        assert_eq!(last, [host(9)]);
        let memory = Holders::in_memory();
        for i in 0..MAX_HOSTS {
            let client = IpAddr::from((i as u32 + 1).to_be_bytes());
            let server = host(1).server;
            assert_eq!(memory.record(Host { client, server }).await, Recorded::Yes);
        }
        assert_eq!(memory.record(host(200)).await, Recorded::No);
        assert_eq!(holders.record(host(200)).await, Recorded::Yes);
    }
}
