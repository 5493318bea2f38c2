//! The config contract's tests: each error names its key and line.

use super::env::substitute_env;
use super::*;

fn parse(text: &str) -> Result<Config> {
    Config::parse(text, "mounts.toml")
}

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:20490"

[[mount]]
name = "data"
plugin = "local"
[mount.config]
root = "/srv/data"
attr_ttl_ms = 500

[[mount]]
name = "models"
plugin = "/opt/plugins/hub.wasm"
read_only = true
[mount.limits]
instances = 2
"#;

#[test]
fn parses_mounts_config_and_limits() {
    let config = parse(GOOD).unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:20490".parse().unwrap());
    assert_eq!(config.mounts.len(), 2);
    let data = &config.mounts[0];
    assert_eq!(data.name(), "data");
    assert!(!data.read_only);
    assert_eq!(
        data.plugin_config(),
        vec![
            ("attr_ttl_ms".into(), "500".into()),
            ("root".into(), "/srv/data".into())
        ]
    );
    assert_eq!(data.limits.instances, Limits::default().instances);
    let models = &config.mounts[1];
    assert!(models.read_only);
    assert_eq!(models.limits.instances, 2);
    assert_eq!(
        models.limits.call_timeout_ms,
        Limits::default().call_timeout_ms
    );
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = GOOD.replace("read_only = true", "read_onyl = true");
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(err.contains("read_onyl"), "{err}");
    assert!(err.contains("line 15"), "{err}");
}

#[test]
fn wrong_type_names_key_and_line() {
    let text = GOOD.replace("read_only = true", "read_only = \"yes\"");
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(err.contains("line 15"), "{err}");
    assert!(
        err.contains("read_only") || err.contains("boolean"),
        "{err}"
    );
}

#[test]
fn bad_listen_address_is_an_error() {
    let err = format!(
        "{:#}",
        parse(&GOOD.replace("127.0.0.1:20490", "localhost")).unwrap_err()
    );
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn duplicate_mount_names_point_at_both_lines() {
    let text = GOOD.replace("name = \"models\"", "name = \"data\"");
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(
        err.contains("mounts.toml:13") && err.contains("mounts.toml:6"),
        "{err}"
    );
}

#[test]
fn mount_names_must_be_one_plain_component() {
    for bad in ["a/b", "..", "", "with space"] {
        let text = GOOD.replace("name = \"models\"", &format!("name = {bad:?}"));
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("mounts.toml:13: key `name`"), "{bad}: {err}");
    }
}

#[test]
fn nested_plugin_config_values_are_refused_with_their_line() {
    let text = GOOD.replace("attr_ttl_ms = 500", "attr_ttl_ms = [1, 2]");
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(
        err.contains("mounts.toml:10: key `config.attr_ttl_ms`"),
        "{err}"
    );
}

#[test]
fn zero_limits_are_refused() {
    let text = GOOD.replace("instances = 2", "instances = 0");
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(err.contains("limits.instances"), "{err}");
}

#[test]
fn host_buffers_are_bounded_and_named_when_wrong() {
    let text = GOOD.replace("instances = 2", "instances = 2\nhost_buffers_mb = 64");
    let config = parse(&text).unwrap();
    let limits = config.mounts.iter().map(|m| m.limits.host_buffers());
    assert!(limits.clone().any(|b| b == 64 << 20));
    assert!(limits.into_iter().any(|b| b == 256 << 20), "the default");
    let text = GOOD.replace("instances = 2", "instances = 2\nhost_buffers_mb = 0");
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(err.contains("limits.host_buffers_mb"), "{err}");
}

#[test]
fn portmap_defaults_to_port_111_and_can_be_moved_or_turned_off() {
    let default = parse(GOOD).unwrap();
    assert_eq!(
        default.server.portmap,
        Some("127.0.0.1:111".parse().unwrap())
    );
    let listen = "listen = \"127.0.0.1:20490\"";
    let with = |value: &str| GOOD.replace(listen, &format!("{listen}\nportmap = {value}"));
    let moved = parse(&with("\"0.0.0.0:10111\"")).unwrap();
    assert_eq!(moved.server.portmap, Some("0.0.0.0:10111".parse().unwrap()));
    assert_eq!(parse(&with("\"off\"")).unwrap().server.portmap, None);
    for bad in ["\"localhost:111\"", "\"on\"", "111"] {
        let err = format!("{:#}", parse(&with(bad)).unwrap_err());
        assert!(
            err.contains("line 4") && err.contains("portmap"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn directory_grants_need_distinct_absolute_guest_paths() {
    let grant = |guest: &str| {
        format!("{GOOD}[[mount.dirs]]\nhost = \"/srv\"\nguest = \"{guest}\"\nread_only = true\n")
    };
    let config = parse(&grant("/data")).unwrap();
    assert_eq!(config.mounts[1].dirs[0].guest.get_ref(), "/data");
    assert!(config.mounts[1].dirs[0].read_only);
    for bad in ["data", "/", "/a/../b"] {
        let err = format!("{:#}", parse(&grant(bad)).unwrap_err());
        assert!(
            err.contains("key `dirs.guest`") && err.contains("mounts.toml:"),
            "{bad}: {err}"
        );
    }
    let twice = format!(
        "{}[[mount.dirs]]\nhost = \"/x\"\nguest = \"/data/\"\n",
        grant("/data")
    );
    let err = format!("{:#}", parse(&twice).unwrap_err());
    assert!(err.contains("already granted"), "{err}");
}

#[test]
fn mounts_serve_loopback_unless_an_allow_list_says_otherwise() {
    let config = parse(GOOD).unwrap();
    let loopback = config.mounts[0].allowed_clients();
    assert!(loopback
        .iter()
        .any(|n| n.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())));
    assert!(!loopback
        .iter()
        .any(|n| n.contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap())));
    let text = GOOD.replace(
        "read_only = true",
        "read_only = true\nallow = [\"10.0.0.0/8\", \"192.168.1.7\"]",
    );
    let allowed = parse(&text).unwrap().mounts[1].allowed_clients();
    assert!(allowed
        .iter()
        .any(|n| n.contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap())));
    assert!(allowed
        .iter()
        .any(|n| n.contains(&"192.168.1.7".parse::<std::net::IpAddr>().unwrap())));
    assert!(!allowed
        .iter()
        .any(|n| n.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap())));
    let bad = GOOD.replace(
        "read_only = true",
        "read_only = true\nallow = [\"10.0.0.0/33\"]",
    );
    let err = format!("{:#}", parse(&bad).unwrap_err());
    assert!(err.contains("mounts.toml:16: key `allow`"), "{err}");
}

#[test]
fn environment_variables_are_substituted_escaped_and_missing_ones_named() {
    let env = |name: &str| match name {
        "ROOT" => Some("/srv/data".to_string()),
        "TRICKY" => Some("a\"b\\c\nd".to_string()),
        _ => None,
    };
    let text = "[server]\nlisten = \"127.0.0.1:1\"\n[[mount]]\nname = \"d\"\nplugin = \"local\"\n[mount.config]\nroot = \"${ROOT}\"\nnote = \"${TRICKY} costs $$5 and $${ROOT}\"\n";
    let expanded = substitute_env(text, "m.toml", env).unwrap();
    assert_eq!(
        expanded.lines().count(),
        text.lines().count(),
        "line numbers are kept"
    );
    let config: Config = toml::from_str(&expanded).unwrap();
    let values = config.mounts[0].plugin_config();
    assert_eq!(values[1], ("root".to_string(), "/srv/data".to_string()));
    assert_eq!(values[0].1, "a\"b\\c\nd costs $$5 and ${ROOT}");
    let err = format!(
        "{:#}",
        substitute_env("a = 1\nb = \"${NOPE}\"\n", "m.toml", env).unwrap_err()
    );
    assert!(err.contains("m.toml:2") && err.contains("${NOPE}"), "{err}");
}

#[test]
fn admin_is_off_unless_given() {
    assert_eq!(parse(GOOD).unwrap().server.admin_addr(), None);
    let listen = "listen = \"127.0.0.1:20490\"";
    let with = |value: &str| GOOD.replace(listen, &format!("{listen}\nadmin = {value}"));
    assert_eq!(
        parse(&with("\"127.0.0.1:9464\""))
            .unwrap()
            .server
            .admin_addr(),
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(parse(&with("\"off\"")).unwrap().server.admin_addr(), None);
    let err = format!("{:#}", parse(&with("\"localhost:9464\"")).unwrap_err());
    assert!(err.contains("line 4") && err.contains("admin"), "{err}");
}

#[test]
fn a_public_admin_address_needs_a_token() {
    let listen = "listen = \"127.0.0.1:20490\"";
    let with = |keys: &str| GOOD.replace(listen, &format!("{listen}\n{keys}"));
    let err = format!(
        "{:#}",
        parse(&with("admin = \"0.0.0.0:9464\"")).unwrap_err()
    );
    assert!(
        err.contains("mounts.toml:4: key `admin`") && err.contains("admin_token_env"),
        "{err}"
    );
    let config = parse(&with(
        "admin = \"0.0.0.0:9464\"\nadmin_token_env = \"NFSGW_ADMIN_TOKEN\"",
    ))
    .unwrap();
    assert_eq!(
        config.server.admin_addr(),
        Some("0.0.0.0:9464".parse().unwrap())
    );
    assert!(parse(&with("admin = \"[::1]:9464\"")).is_ok());
    let err = format!(
        "{:#}",
        parse(&with("admin = \"127.0.0.1:9464\"\nadmin_token_env = \" \"")).unwrap_err()
    );
    assert!(
        err.contains("mounts.toml:5: key `admin_token_env`"),
        "{err}"
    );
    let text = with("admin_token_env = \"NFSGW_TEST_SURELY_UNSET_VARIABLE\"");
    let config = parse(&text).unwrap();
    let src = Source {
        file: "mounts.toml",
        text: &text,
    };
    let err = format!("{:#}", config.server.admin_token(&src).unwrap_err());
    assert!(
        err.contains("mounts.toml:4: key `admin_token_env`")
            && err.contains("NFSGW_TEST_SURELY_UNSET_VARIABLE"),
        "{err}"
    );
}

#[test]
fn root_is_squashed_by_default_and_squash_options_are_checked() {
    let config = parse(GOOD).unwrap();
    let squash = config.mounts[0].squash();
    assert!(squash.root && !squash.all);
    assert_eq!((squash.anon_uid, squash.anon_gid), (NOBODY, NOBODY));
    let text = GOOD.replace(
        "read_only = true",
        "read_only = true\nroot_squash = false\nall_squash = true\nanon_uid = 1500\nanon_gid = 1600",
    );
    let squash = parse(&text).unwrap().mounts[1].squash();
    assert!(!squash.root && squash.all);
    assert_eq!((squash.anon_uid, squash.anon_gid), (1500, 1600));
    for (key, bad) in [("anon_uid", "-1"), ("anon_gid", "4294967296")] {
        let text = GOOD.replace(
            "read_only = true",
            &format!("read_only = true\n{key} = {bad}"),
        );
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(
            err.contains(&format!("mounts.toml:16: key `{key}` of mount \"models\"")),
            "{err}"
        );
    }
    let text = GOOD.replace(
        "read_only = true",
        "read_only = true\nroot_squash = \"yes\"",
    );
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(
        err.contains("line 16") && err.contains("root_squash"),
        "{err}"
    );
}

#[test]
fn limits_on_clients_are_read_and_checked() {
    let limits = parse(GOOD).unwrap().mounts[1].limits_on_clients();
    assert_eq!(limits, MountLimits::default());
    let text = GOOD.replace(
        "read_only = true",
        "read_only = true\nallow_devices = true\nmax_file_size = 1048576\n\
         staging_reserve = 0\nmax_staged_files = 3",
    );
    let limits = parse(&text).unwrap().mounts[1].limits_on_clients();
    assert!(limits.allow_devices);
    assert_eq!(limits.max_file_size, Some(1 << 20));
    assert_eq!(limits.staging_reserve, Some(0));
    assert_eq!(limits.max_staged_files, Some(3));
    for (key, bad) in [("max_file_size", "0"), ("max_staged_files", "-1")] {
        let text = GOOD.replace(
            "read_only = true",
            &format!("read_only = true\n{key} = {bad}"),
        );
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(
            err.contains(&format!("mounts.toml:16: key `{key}` of mount \"models\"")),
            "{err}"
        );
    }
}

#[test]
fn missing_server_table_is_an_error() {
    let text = GOOD.replace("[server]\nlisten = \"127.0.0.1:20490\"", "");
    let err = format!("{:#}", parse(&text).unwrap_err());
    assert!(err.contains("server"), "{err}");
}

#[test]
fn connection_keys_refuse_too_small_values_with_their_line() {
    for (key, bad) in [("max_connections", "0"), ("record_memory_mb", "3")] {
        let text = GOOD.replace(
            "listen = \"127.0.0.1:20490\"",
            &format!("listen = \"127.0.0.1:20490\"\n{key} = {bad}"),
        );
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(
            err.contains(&format!("mounts.toml:4: key `server.{key}`: {bad} is less")),
            "{err}"
        );
    }
}

#[test]
fn cache_keys_have_defaults_and_refuse_too_small_values_with_their_line() {
    let defaults = parse(GOOD).unwrap().server.cache.limits();
    assert_eq!(defaults, CacheLimits::default());
    assert_eq!(
        (defaults.listing_entries, defaults.open_files),
        (200_000, 512)
    );
    let set = GOOD.replace(
        "listen = \"127.0.0.1:20490\"",
        "listen = \"127.0.0.1:20490\"\n[server.cache]\nattr_entries = 5000\nopen_files = 0",
    );
    let limits = parse(&set).unwrap().server.cache.limits();
    assert_eq!((limits.attr_entries, limits.open_files), (5000, 0));
    let bad = GOOD.replace(
        "listen = \"127.0.0.1:20490\"",
        "listen = \"127.0.0.1:20490\"\n[server.cache]\nattr_entries = 10",
    );
    let err = format!("{:#}", parse(&bad).unwrap_err());
    assert!(
        err.contains("mounts.toml:5: key `server.cache.attr_entries`: 10 is less than 16"),
        "{err}"
    );
}

#[test]
fn an_s3_fault_plan_parses_and_an_unknown_operation_names_its_key_and_line() {
    let grant = "[mount.s3]\nbucket = \"b\"\nrequest_timeout_ms = 1000\n[mount.s3.faults]\n";
    let server = "[server]\nlisten = \"127.0.0.1:2049\"\n";
    let base = format!("{server}[[mount]]\nname = \"b\"\nplugin = \"s3\"\n{grant}");
    let config = parse(&format!(
        "{base}ops = [\"put_part\", \"complete_multipart\"]\nafter = 2\ntimes = 1\naction = \"hang\"\n"
    ))
    .unwrap();
    let s3 = config.mounts[0].s3.as_ref().unwrap();
    assert_eq!(s3.request_timeout_ms, 1000);
    let faults = s3.faults.as_ref().unwrap();
    assert_eq!(faults.ops, [S3Op::PutPart, S3Op::CompleteMultipart]);
    assert_eq!((faults.after, faults.times), (2, Some(1)));
    assert_eq!(faults.action, FaultAction::Hang);
    let e = parse(&format!("{base}ops = [\"put\", \"frob\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 10") && e.contains("ops") && e.contains("frob"),
        "{e}"
    );
    let e = parse(&format!("{base}ops = []\naction = \"explode\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 11") && e.contains("action") && e.contains("explode"),
        "{e}"
    );
}
