//! Operations and security end to end: the admin listener's `/metrics` and `/status`,
//! `nfsgw status`, the squash options of a mount, and the example service files.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nfs3_types::nfs3::nfsstat3;

use crate::harness::{
    faulty_wasm, free_port, local_mount, nfsgw_binary, repo_root, run_with_timeout, tempdir,
    toml_str, Server, NO_ROOT_SQUASH,
};

/// `GET path` from the admin listener on 127.0.0.1:`port`: (status code, body).
pub(crate) fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status code");
    (code, body.to_string())
}

/// The value of the metric sample `series` (its name and labels, exactly as rendered).
pub(crate) fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{metrics}"))
}

/// A server with the admin listener on a fixed free port: (server, admin port).
pub(crate) fn with_admin(mounts: &str) -> (Server, u16) {
    let port = free_port();
    let server = Server::start_with(&format!(
        "portmap = \"off\"\nadmin = \"127.0.0.1:{port}\"\n\n{mounts}"
    ));
    assert!(
        server
            .stdout()
            .contains(&format!("admin listener on http://127.0.0.1:{port}")),
        "{}",
        server.stdout()
    );
    (server, port)
}

#[tokio::test]
async fn metrics_count_procedures_bytes_cache_hits_and_errors() {
    let dir = tempdir("nfsgw-ops-");
    // Attributes stay cached for the whole test, however slow the machine.
    let (server, admin) = with_admin(&local_mount(
        "data",
        dir.path(),
        false,
        "attr_ttl_ms = 600000",
    ));
    let mut nfs = server.mount("/data").await;
    let top = nfs.root.clone();
    let data = vec![7u8; 10_000];
    let file = nfs.put(&top, "f", &data).await;
    for _ in 0..2 {
        assert_eq!(nfs.read_all(&file).await.unwrap(), data);
    }
    for _ in 0..3 {
        nfs.getattr(&file).await.unwrap();
    }
    assert_eq!(
        nfs.lookup(&top, "missing").await.unwrap_err(),
        nfsstat3::NFS3ERR_NOENT
    );

    let (code, m) = http_get(admin, "/metrics");
    assert_eq!(code, 200, "{m}");
    let data = "{mount=\"data\"}";
    // Only this client used the mount: the byte counts are exact.
    assert_eq!(
        sample(&m, &format!("nfsgw_written_bytes_total{data}")),
        10_000.0
    );
    assert_eq!(
        sample(&m, &format!("nfsgw_read_bytes_total{data}")),
        20_000.0
    );
    assert!(sample(&m, &format!("nfsgw_mount_errors_total{data}")) >= 1.0);
    assert!(
        sample(&m, &format!("nfsgw_mount_requests_total{data}"))
            > sample(&m, &format!("nfsgw_mount_errors_total{data}"))
    );
    let nfs3 = |p: &str| format!("{{program=\"nfs3\",procedure=\"{p}\"}}");
    assert!(sample(&m, &format!("nfsgw_rpc_requests_total{}", nfs3("READ"))) >= 2.0);
    assert!(sample(&m, &format!("nfsgw_rpc_requests_total{}", nfs3("WRITE"))) >= 1.0);
    assert!(sample(&m, &format!("nfsgw_rpc_requests_total{}", nfs3("GETATTR"))) >= 3.0);
    assert!(
        sample(
            &m,
            "nfsgw_rpc_requests_total{program=\"mount\",procedure=\"MNT\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &m,
            &format!("nfsgw_rpc_duration_seconds_count{}", nfs3("READ"))
        ) >= 2.0
    );
    // GETATTR right after a change is answered from the attribute cache.
    assert!(sample(&m, "nfsgw_cache_hits_total{mount=\"data\",cache=\"attr\"}") >= 3.0);
    sample(
        &m,
        "nfsgw_cache_misses_total{mount=\"data\",cache=\"attr\"}",
    );
    // The write-back queue's series exist before anything uses them.
    assert_eq!(sample(&m, &format!("nfsgw_flush_queue_depth{data}")), 0.0);
    assert_eq!(
        sample(&m, &format!("nfsgw_upload_failures_total{data}")),
        0.0
    );
    assert!(m.ends_with("# EOF\n"));

    assert_eq!(http_get(admin, "/nothing").0, 404);
}

#[tokio::test]
async fn metrics_count_plugin_traps_and_timeouts_per_mount() {
    let plugin_dir = tempdir("nfsgw-ops-plugin-");
    let wasm = plugin_dir.path().join("faulty.wasm");
    std::fs::write(&wasm, faulty_wasm()).unwrap();
    let (server, admin) = with_admin(&format!(
        "[[mount]]\nname = \"faulty\"\nplugin = {}\n{NO_ROOT_SQUASH}[mount.limits]\n\
         call_timeout_ms = 300\n",
        toml_str(wasm.to_str().unwrap())
    ));
    let mut nfs = server.mount("/faulty").await;
    let top = nfs.root.clone();
    for name in ["trap", "trap", "hang"] {
        assert_eq!(
            nfs.lookup(&top, name).await.unwrap_err(),
            nfsstat3::NFS3ERR_IO
        );
    }
    assert_eq!(
        nfs.lookup(&top, "nothing-here").await.unwrap_err(),
        nfsstat3::NFS3ERR_NOENT
    );
    let (_, m) = http_get(admin, "/metrics");
    let failures = |reason: &str| {
        sample(
            &m,
            &format!("nfsgw_plugin_failures_total{{mount=\"faulty\",reason=\"{reason}\"}}"),
        )
    };
    assert_eq!(failures("trap"), 2.0);
    assert_eq!(failures("timeout"), 1.0);
    assert_eq!(failures("panic"), 0.0);
    assert!(
        sample(
            &m,
            "nfsgw_plugin_call_errors_total{mount=\"faulty\",error=\"not-found\"}"
        ) >= 1.0
    );
    assert!(sample(&m, "nfsgw_plugin_calls_total{mount=\"faulty\",op=\"stat\"}") >= 4.0);
}

#[tokio::test]
async fn status_reports_the_instance_and_its_mounts() {
    let (data, archive) = (tempdir("nfsgw-ops-"), tempdir("nfsgw-ops-"));
    let (server, admin) = with_admin(&format!(
        "{}{}",
        local_mount("data", data.path(), false, ""),
        local_mount("archive", archive.path(), true, "").replace(
            NO_ROOT_SQUASH,
            "all_squash = true\nsecure = false\n[mount.limits]\ninstances = 2\n"
        )
    ));
    let mut nfs = server.mount("/data").await;
    let top = nfs.root.clone();
    nfs.put(&top, "x", b"x").await;
    let _ = nfs.lookup(&top, "missing").await;

    let (code, json) = http_get(admin, "/status");
    assert_eq!(code, 200);
    assert!(
        json.contains(&format!("\"listen\": \"127.0.0.1:{}\"", server.port)),
        "{json}"
    );

    // By address, and by the config the server runs.
    let by_addr = run_with_timeout(
        Command::new(nfsgw_binary()).args(["status", "--admin", &format!("127.0.0.1:{admin}")]),
        Duration::from_secs(60),
    );
    let config = server.dir.path().join("config.toml");
    let by_config = run_with_timeout(
        Command::new(nfsgw_binary())
            .arg("status")
            .arg("--config")
            .arg(&config),
        Duration::from_secs(60),
    );
    for out in [by_addr, by_config] {
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with("nfsgw 0."), "{text}");
        assert!(
            text.contains(&format!("NFSv3 + MOUNT on 127.0.0.1:{}", server.port)),
            "{text}"
        );
        let row = |name: &str| -> Vec<String> {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no {name} row in\n{text}"))
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        let data = row("/data ");
        assert_eq!(
            &data[..4],
            ["/data", "local", "read-write", "none"],
            "{text}"
        );
        let (requests, errors): (u64, u64) = (data[4].parse().unwrap(), data[5].parse().unwrap());
        // CREATE, WRITE and the failed LOOKUP, at least.
        assert!(requests >= 3 && errors >= 1, "{text}");
        assert!(data[7].ends_with("/4"), "{text}");
        let archive = row("/archive");
        assert_eq!(
            archive,
            [
                "/archive",
                "local",
                "read-only",
                "all",
                "0",
                "0",
                "0",
                "1/2",
                "0"
            ],
            "{text}"
        );
    }
}

#[test]
fn status_says_so_when_nothing_runs() {
    let port = free_port();
    let out = run_with_timeout(
        Command::new(nfsgw_binary()).args(["status", "--admin", &format!("127.0.0.1:{port}")]),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "no nfsgw admin listener answers on 127.0.0.1:{port}"
        )),
        "{err}"
    );
    // A config without an admin listener says which key to set.
    let dir = tempdir("nfsgw-ops-");
    let config = dir.path().join("m.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n{}",
            local_mount("d", dir.path(), false, "")
        ),
    )
    .unwrap();
    let out = run_with_timeout(
        Command::new(nfsgw_binary())
            .arg("status")
            .arg("--config")
            .arg(&config),
        Duration::from_secs(60),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("has no admin listener") && err.contains("admin = "),
        "{err}"
    );
}

/// A host directory anyone may change, holding `private` (uid 1000, mode 0700).
fn shared_dir_with_private_file() -> tempfile::TempDir {
    let dir = tempdir("nfsgw-ops-squash-");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let private = dir.path().join("private");
    std::fs::write(&private, b"only for uid 1000").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&private, Some(1000), Some(1000)).unwrap();
    dir
}

fn owner(path: &Path) -> (u32, u32) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    (meta.uid(), meta.gid())
}

/// `local_mount` squashes nothing; this one squashes as the test says, with anon 1500:1600.
fn squashing_mount(name: &str, root: &Path, squash: &str) -> String {
    local_mount(name, root, false, "").replace(
        "root_squash = false\n",
        &format!("{squash}anon_uid = 1500\nanon_gid = 1600\n"),
    )
}

#[tokio::test]
async fn a_squashed_root_is_the_anonymous_user() {
    let dir = shared_dir_with_private_file();
    // The same directory twice: squashed by default, and with root's powers kept.
    let server = Server::start(&format!(
        "{}{}",
        squashing_mount("squashed", dir.path(), ""),
        local_mount("kept", dir.path(), false, ""),
    ));
    let mut root = server.mount("/squashed").await;
    let top = root.root.clone();
    let private = root.lookup(&top, "private").await.unwrap();
    assert_eq!(
        root.read(&private, 0, 100).await.unwrap_err(),
        nfsstat3::NFS3ERR_ACCES
    );
    assert_eq!(
        root.write(&private, 0, b"overwritten").await.unwrap_err(),
        nfsstat3::NFS3ERR_ACCES
    );
    assert_eq!(
        root.set_mode(&private, 0o777).await.unwrap_err(),
        nfsstat3::NFS3ERR_PERM
    );
    root.create(&top, "made-by-root", 0o644).await.unwrap();
    root.mkdir(&top, "dir-by-root").await.unwrap();
    assert_eq!(owner(&dir.path().join("made-by-root")), (1500, 1600));
    assert_eq!(owner(&dir.path().join("dir-by-root")), (1500, 1600));
    assert_eq!(
        std::fs::read(dir.path().join("private")).unwrap(),
        b"only for uid 1000"
    );
    assert_eq!(
        std::fs::metadata(dir.path().join("private"))
            .unwrap()
            .mode()
            & 0o777,
        0o700
    );

    // The same calls as root on the mount that keeps root's powers succeed.
    let mut kept = server.mount("/kept").await;
    let top = kept.root.clone();
    let private = kept.lookup(&top, "private").await.unwrap();
    assert_eq!(
        kept.read(&private, 0, 100).await.unwrap().0,
        b"only for uid 1000"
    );
    kept.create(&top, "made-by-real-root", 0o644).await.unwrap();
    assert_eq!(owner(&dir.path().join("made-by-real-root")), (0, 0));
}

#[tokio::test]
async fn all_squash_makes_every_user_the_anonymous_user() {
    let dir = shared_dir_with_private_file();
    let server = Server::start(&squashing_mount("all", dir.path(), "all_squash = true\n"));
    // uid 1000 owns `private`, but on this mount it is the anonymous user too.
    let mut owner_1000 = server
        .try_mount_as("/all", Some((1000, 1000)))
        .await
        .unwrap();
    let top = owner_1000.root.clone();
    let private = owner_1000.lookup(&top, "private").await.unwrap();
    assert_eq!(
        owner_1000.read(&private, 0, 100).await.unwrap_err(),
        nfsstat3::NFS3ERR_ACCES
    );
    let mut user = server
        .try_mount_as("/all", Some((1234, 567)))
        .await
        .unwrap();
    user.create(&top, "made-by-1234", 0o640).await.unwrap();
    assert_eq!(owner(&dir.path().join("made-by-1234")), (1500, 1600));
}

/// The systemd unit parses: `systemd-analyze verify` finds nothing to say about it (with
/// ExecStart pointed at the built binary, since verify checks that it is executable).
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(repo_root().join("config/nfsgw.service")).unwrap();
    for wanted in [
        "ExecStart=/usr/local/bin/nfsgw --config /etc/nfsgw/mounts.toml\n",
        "Restart=on-failure\n",
        "StateDirectory=nfsgw\n",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE\n",
    ] {
        assert!(unit.contains(wanted), "nfsgw.service lacks {wanted:?}");
    }
    let Ok(found) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("SKIPPED: systemd-analyze is not installed, so the unit was not verified");
        return;
    };
    assert!(found.status.success());
    let dir = tempdir("nfsgw-ops-unit-");
    let copy = dir.path().join("nfsgw.service");
    let binary = nfsgw_binary();
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/nfsgw", binary.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    // verify only warns about unknown keys or bad values: any line about the unit fails.
    let about_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("nfsgw.service"))
        .collect();
    assert!(out.status.success() && about_unit.is_empty(), "{said}");
}

/// The launchd job is a well-formed property list that runs nfsgw with its config.
#[test]
fn the_launchd_plist_parses() {
    let plist = repo_root().join("config/com.nfsgw.plist");
    let script = "import plistlib, sys\n\
                  job = plistlib.load(open(sys.argv[1], 'rb'))\n\
                  print(job['Label']); print(' '.join(job['ProgramArguments']))\n\
                  print(job['KeepAlive']['SuccessfulExit'])\n";
    let Ok(out) = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&plist)
        .output()
    else {
        println!("SKIPPED: python3 is not installed, so the plist was not parsed");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "com.nfsgw",
            "/usr/local/bin/nfsgw --config /usr/local/etc/nfsgw/mounts.toml",
            "False"
        ]
    );
}

/// `nfsgw --version` names the release, the commit built and the plugin interface, so that a
/// bug report says exactly what ran.
#[test]
fn version_names_the_commit_and_the_plugin_interface() {
    let out = run_with_timeout(
        Command::new(nfsgw_binary()).arg("--version"),
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let wit = std::fs::read_to_string(repo_root().join("wit/backend.wit")).unwrap();
    let package = wit
        .lines()
        .find_map(|l| l.trim().strip_prefix("package "))
        .and_then(|p| p.strip_suffix(';'))
        .unwrap();
    assert!(
        text.contains(&format!("plugin interface {package}")),
        "{text}"
    );
    let commit = text
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no commit in {text:?}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{text}"
    );
}
