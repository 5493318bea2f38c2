//! The threat model as a stateful property test (docs/SECURITY.md): seeded random sequences of
//! NFS calls, made by uids 0 (squashed), 1000 and 1001 with random groups, on random handles
//! (the caller's own, other users', symlinks', removed objects', forged ones) against a local
//! export of a root-owned tree seeded with 0600, 0644, 0700, sticky and set-group-id entries.
//! Before and after every call the test, running as root, takes the host's own `lstat` view of
//! the whole export (and of a file outside it that symlinks point at) and checks that no call
//! returned bytes from, or changed, an object that the caller's squashed identity could not
//! read or change under POSIX rules, Linux's protected hard links included. The model is one
//! sided: a server may refuse more than it must. An owner counts as able to do anything to its
//! own object, as it could grant itself any permission bit first. A failure names the seed, the
//! whole sequence, the caller, the object and what changed. `NFSGW_MODEL_CASES` (default 30)
//! sets how many sequences run, `NFSGW_MODEL_STEPS` (default 80) their length, and
//! `NFSGW_MODEL_SEED` the first sequence's seed (case `n` uses seed + `n`; a failure report
//! says how to replay it alone).

mod calls;
mod host;
mod posix;

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nfs3_client::tokio::TokioConnector;
use nfs3_client::Nfs3ConnectionBuilder;
use nfs3_types::nfs3::{nfs_fh3, stable_how, Nfs3Option};
use nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_types::xdr_codec::Opaque;

use crate::harness::{self, Server};
use calls::{random_sattr, Call, Conn, How, Known, Node};
use host::{seed_tree, snapshot, Kind, Snapshot};
use posix::{forbidden_answers, forbidden_changes, Claimed, UIDS};

/// A call that takes longer is reported as a hang (a generous bound, not a timing check).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How a report says that a call got no answer.
const HANG: &str = "no answer within";

/// A seeded PRNG (splitmix64): a failing sequence replays from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// One sequence: its connections (one per claimed identity), the handles every caller has
/// obtained so far, and the calls made, for the report.
struct Case<'a> {
    server: &'a Server,
    base: &'a Path,
    name: String,
    conns: HashMap<Claimed, Conn>,
    pool: Vec<Known>,
    log: Vec<String>,
    /// How many of the calls in `log` were the callers' first look around.
    looked_around: usize,
}

impl Case<'_> {
    async fn conn(&mut self, who: &Claimed) -> Result<&mut Conn, String> {
        if !self.conns.contains_key(who) {
            let credential = opaque_auth::auth_unix(&auth_unix {
                machinename: Opaque::borrowed(b"nfsgw-model"),
                uid: who.uid,
                gid: who.gid,
                gids: who.gids.clone(),
                ..auth_unix::default()
            });
            let port = self.server.port;
            let conn = Nfs3ConnectionBuilder::new(TokioConnector, "127.0.0.1", "/model")
                .credential(credential)
                .connect_from_privileged_port(false)
                .mount_port(port)
                .nfs3_port(port)
                .mount()
                .await
                .map_err(|e| format!("mount as {who} failed: {e:?}"))?;
            if self.pool.is_empty() {
                self.pool.push(Known {
                    fh: conn.root_nfs_fh3(),
                    id: snapshot(self.base).id_of(self.base, "export"),
                    label: "/export".into(),
                });
            }
            self.conns.insert(who.clone(), conn);
        }
        Ok(self.conns.get_mut(who).expect("just inserted"))
    }

    /// Makes one call and checks it: `Err` is the report of a violation.
    async fn step(&mut self, who: Claimed, call: Call) -> Result<(), String> {
        let acting = who.acting();
        let before = snapshot(self.base);
        let text = call.text(&self.pool);
        let object = match &call {
            Call::Getattr(i) | Call::Access(i) | Call::Read(i, _, _) | Call::Readlink(i) => {
                Some(*i)
            }
            Call::Lookup(i, _) | Call::Readdirplus(i) => Some(*i),
            _ => None,
        }
        .and_then(|i| self.pool[i].id)
        .and_then(|id| before.objects.get(&id))
        .cloned();
        let pool = self.pool.clone();
        let conn = self.conn(&who).await?;
        let answer = match tokio::time::timeout(CALL_TIMEOUT, call.run(conn, &pool)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                self.log.push(format!("{who}: {text} -> {e}"));
                return Err(e);
            }
            Err(_) => {
                let e = format!("{HANG} {CALL_TIMEOUT:?}");
                self.log.push(format!("{who}: {text} -> {e}"));
                return Err(e);
            }
        };
        let after = snapshot(self.base);
        let mut line = format!("{who}: {text} -> {}", answer.status);
        let dir = call
            .dir()
            .and_then(|d| self.pool[d].id)
            .and_then(|id| after.objects.get(&id))
            .filter(|o| o.kind == Kind::Dir);
        for (name, fh) in answer.handles.iter() {
            let Some(fh) = fh else { continue };
            let id = dir.and_then(|d| match name.as_str() {
                "." => after.id_of(self.base, &d.path),
                ".." => after.id_of(self.base, &format!("{}/..", d.path)),
                _ => after.id_of(self.base, &format!("{}/{name}", d.path)),
            });
            let label = match (dir, id.and_then(|id| after.objects.get(&id))) {
                (_, Some(o)) => format!("/{} by uid {}", o.path, who.uid),
                (Some(d), None) => format!("/{}/{name} by uid {}", d.path, who.uid),
                (None, None) => format!("?/{name} by uid {}", who.uid),
            };
            if !self.pool.iter().any(|k| k.fh == *fh) {
                let _ = write!(line, " [h{} = {label}]", self.pool.len());
                self.pool.push(Known {
                    fh: fh.clone(),
                    id,
                    label,
                });
            }
        }
        self.log.push(line);
        for known in &mut self.pool {
            // A removed object's number may be reused by a new one: the handle names neither.
            if known.id.is_some_and(|id| !after.objects.contains_key(&id)) {
                known.id = None;
            }
        }
        let mut found = forbidden_answers(&acting, &call, object.as_ref(), &answer, &before);
        found.extend(forbidden_changes(&acting, &before, &after));
        if found.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{}\n  caller {who} acts as uid {} groups {:?}\n  call: {text} -> {}",
                found.join("\n"),
                acting.uid,
                acting.groups,
                answer.status
            ))
        }
    }

    /// A handle for a call: mostly one from the pool, sometimes a forged one (another inode
    /// number in a real handle's bytes).
    fn handle(&mut self, rng: &mut Rng) -> usize {
        if rng.chance(8) {
            let source = rng.pick(&self.pool);
            let mut bytes = source.fh.data.to_vec();
            // Bytes 9..17 of nfsgw's handles are the inode number (big-endian).
            if let Some(low) = bytes.get_mut(16) {
                *low = low.wrapping_add(1 + rng.below(6) as u8);
            }
            let fh = nfs_fh3 {
                data: Opaque::owned(bytes),
            };
            if let Some(i) = self.pool.iter().position(|k| k.fh == fh) {
                return i;
            }
            self.pool.push(Known {
                fh,
                id: None,
                label: format!("forged from {}", source.label),
            });
            return self.pool.len() - 1;
        }
        rng.below(self.pool.len())
    }

    fn name(&self, rng: &mut Rng) -> String {
        let seeded = [
            "secret",
            "public",
            "rootdir",
            "inner",
            "shared",
            "sticky",
            "setgid",
            "u1000",
            "u1001",
            "mine",
            "priv",
            "rootfile",
            "f1000",
            "f1001",
            "g",
            "link_secret",
            "link_rootdir",
            "link_outside",
            "link_up",
            "sgid_exec",
            "suid_exec",
        ];
        match rng.below(10) {
            0..=4 => rng.pick(&seeded).to_string(),
            5..=8 => format!("n{}", rng.below(4)),
            _ => rng.pick(&[".", "..", self.name.as_str()]).to_string(),
        }
    }

    /// A random call on random handles and names.
    fn random_call(&mut self, rng: &mut Rng) -> Call {
        let h = self.handle(rng);
        match rng.below(19) {
            0 => Call::Getattr(h),
            1 | 2 => Call::Lookup(h, self.name(rng)),
            3 => Call::Access(h),
            4 => Call::Read(h, rng.pick(&[0, 2]), rng.pick(&[4096, 3])),
            5 => {
                let data = format!("written by the model at step {}", self.log.len());
                let stable = rng.pick(&[stable_how::UNSTABLE, stable_how::FILE_SYNC]);
                Call::Write(h, rng.pick(&[0, 5, 40]), data.into_bytes(), stable)
            }
            6 | 7 => Call::Setattr(h, random_sattr(rng)),
            8 => {
                let how = match rng.below(3) {
                    0 => How::Unchecked(random_sattr(rng)),
                    1 => How::Guarded(random_sattr(rng)),
                    _ => How::Exclusive(rng.next().to_be_bytes()),
                };
                Call::Create(h, self.name(rng), how)
            }
            9 => Call::Mkdir(h, self.name(rng), random_sattr(rng)),
            10 => {
                let target = rng.pick(&["secret", "../secret", "/etc/shadow", "rootdir/inner"]);
                Call::Symlink(h, self.name(rng), target.into())
            }
            11 => {
                // /dev/null's and /dev/loop0's numbers: harmless if a device is made.
                let what = match rng.below(4) {
                    0 => Node::Char(random_sattr(rng), (1, 3)),
                    1 => Node::Block(random_sattr(rng), (7, 0)),
                    2 => Node::Socket(random_sattr(rng)),
                    _ => Node::Fifo(random_sattr(rng)),
                };
                Call::Mknod(h, self.name(rng), what)
            }
            12 => {
                let dir = self.handle(rng);
                Call::Link(h, dir, self.name(rng))
            }
            13 => Call::Remove(h, self.name(rng)),
            14 => Call::Rmdir(h, self.name(rng)),
            15 => {
                let to = self.handle(rng);
                Call::Rename(h, self.name(rng), to, self.name(rng))
            }
            16 => Call::Readlink(h),
            17 => Call::Readdirplus(h),
            _ => Call::Commit(h),
        }
    }

    /// Whether a call would open a FIFO, socket or device for data: the blocking pool's
    /// deadline answers those (tests in hostile::host_fs), slowly, so the model leaves them out.
    fn opens_special(&self, call: &Call, snap: &Snapshot) -> bool {
        let special = |i: &usize| {
            self.pool[*i]
                .id
                .and_then(|id| snap.objects.get(&id))
                .is_some_and(|o| matches!(o.kind, Kind::Fifo | Kind::Socket | Kind::Device))
        };
        match call {
            Call::Read(f, _, _) | Call::Write(f, _, _, _) | Call::Commit(f) => special(f),
            Call::Setattr(f, a) => matches!(a.size, Nfs3Option::Some(_)) && special(f),
            _ => false,
        }
    }
}

/// Runs one sequence; `Err` is its failure report.
async fn run_case(server: &Server, base: &Path, seed: u64, steps: usize) -> Result<(), String> {
    let name = format!("case{seed}");
    seed_tree(base, &name);
    let mut rng = Rng(seed);
    let mut case = Case {
        server,
        base,
        name: name.clone(),
        conns: HashMap::new(),
        pool: Vec::new(),
        log: Vec::new(),
        looked_around: 0,
    };
    let report = |case: &Case, e: String| {
        let mut out = format!(
            "seed {seed}: {e}\n  sequence (the first {} calls are each caller's look around; \
             those that issued no new handle are left out):\n",
            case.looked_around
        );
        for (i, line) in case.log.iter().enumerate() {
            if i >= case.looked_around || line.contains(" [h") || i + 1 == case.log.len() {
                let _ = writeln!(out, "    {:>3}. {line}", i + 1);
            }
        }
        let _ = write!(
            out,
            "  replay: NFSGW_MODEL_SEED={seed} NFSGW_MODEL_CASES=1 NFSGW_MODEL_STEPS={steps}"
        );
        out
    };
    // The callers: each uid with its own group, and three with random groups.
    let mut users: Vec<Claimed> = UIDS
        .iter()
        .map(|&uid| Claimed {
            uid,
            gid: uid,
            gids: Vec::new(),
        })
        .collect();
    users.extend((0..3).map(|_| Claimed::random(&mut rng)));
    if let Err(e) = case.conn(&users[0]).await {
        return Err(report(&case, e));
    }
    // Each caller first looks around: what it can reach becomes part of the shared pool.
    let mut walk = vec![(0usize, name.clone())];
    while let Some((dir, entry)) = walk.pop() {
        for who in &users {
            let before = case.pool.len();
            if let Err(e) = case
                .step(who.clone(), Call::Lookup(dir, entry.clone()))
                .await
            {
                return Err(report(&case, e));
            }
            if case.pool.len() > before && walk.len() < 64 {
                let child = case.pool.len() - 1;
                let snap = snapshot(base);
                if let Some(o) = case.pool[child].id.and_then(|id| snap.objects.get(&id)) {
                    if o.kind == Kind::Dir && !o.outside {
                        for n in o.entries.keys() {
                            walk.push((child, n.clone()));
                        }
                    }
                }
            }
        }
    }
    case.looked_around = case.log.len();
    for _ in 0..steps {
        let who = rng.pick(&users);
        let call = case.random_call(&mut rng);
        if case.opens_special(&call, &snapshot(base)) {
            continue;
        }
        if let Err(e) = case.step(who, call).await {
            return Err(report(&case, e));
        }
    }
    Ok(())
}

/// The test's directories: `export/` (served, root's 0755, one subdirectory per sequence) and
/// `outside/target`, which symlinks in the export point at and nothing may reach.
fn prepare_base() -> tempfile::TempDir {
    let base = harness::tempdir("nfsgw-model-");
    for dir in ["export", "outside"] {
        std::fs::create_dir(base.path().join(dir)).unwrap();
        std::fs::set_permissions(
            base.path().join(dir),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
    }
    std::fs::write(base.path().join("outside/target"), "outside the export\n").unwrap();
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_calls_never_read_or_change_what_posix_forbids() {
    let cases = harness::env_number("NFSGW_MODEL_CASES", 30);
    let steps = harness::env_number("NFSGW_MODEL_STEPS", 80) as usize;
    let first_seed = harness::env_number("NFSGW_MODEL_SEED", 2800);
    let base = prepare_base();
    let root: PathBuf = base.path().join("export");
    let mount = harness::squashed_local_mount("model", &root, "");
    let mut server = Server::start(&format!("{mount}attr_ttl_ms = 0\n"));
    let mut failures: Vec<String> = Vec::new();
    for seed in first_seed..first_seed + cases {
        let outcome = run_case(&server, base.path(), seed, steps).await;
        let _ = std::fs::remove_dir_all(root.join(format!("case{seed}")));
        server.assert_alive();
        if let Err(report) = outcome {
            // Seen as they come with --nocapture, for long runs.
            eprintln!("{}", report.lines().next().unwrap_or_default());
            let wedged = report.contains(HANG);
            failures.push(report);
            if wedged {
                break; // a server that stopped answering fails every later sequence too
            }
        }
    }
    if !failures.is_empty() {
        let mut summary = String::new();
        for report in &failures {
            summary += report.lines().next().unwrap_or_default();
            summary += "\n";
        }
        // The shortest whole report for each procedure that broke the model.
        failures.sort_by_key(|r| r.lines().count());
        let mut seen = BTreeSet::new();
        let mut shown = String::new();
        for report in &failures {
            let procedure = report
                .lines()
                .find_map(|l| l.strip_prefix("  call: "))
                .and_then(|call| call.split_whitespace().next())
                .unwrap_or_default()
                .to_string();
            if seen.insert(procedure) {
                shown += report;
                shown += "\n\n";
            }
        }
        panic!(
            "{} of {cases} sequences broke the threat model:\n{summary}\nThe shortest sequence \
             for each procedure that broke it:\n\n{shown}",
            failures.len()
        );
    }
}
