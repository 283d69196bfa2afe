//! The BM-SC configuration: the example loads, every refusal names its key, and the duration
//! and time syntaxes behave at their edges.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use mbms_keys::bmsc::config::{
    Authorized, Config, ConfigError, DigestAlgorithm, LogFormat, Password, PostgresConfig, Qop,
    StoreConfig, Transport, parse_rfc3339,
};
use mbms_keys::duration::parse as parse_duration;
use mbms_keys::gba::{GbaKeys, KeySource, KeySourceError};

const TOP: &str = r#"
fqdn = "bmsc.example.org"
data_dir = "/var/lib/bmsc"
"#;

const SUBSCRIBER: &str = r#"
[[gba.subscribers]]
btid = "b1@bsf.example.org"
impi = "alice@ims.example.org"
ks_naf = "0101010101010101010101010101010101010101010101010101010101010101"
expires = "2035-01-01T00:00:00Z"
"#;

const SERVICE: &str = r#"
[[services]]
id = "svc-a"
key_domain = "00f110"
key_group = 1
mtk_destination = "239.1.1.1"
transport = "download"
authorized = "*"
"#;

fn no_env(_: &str) -> Option<OsString> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_with_env(text, no_env)
}

fn refused(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// The error's key, checking that Display is "key: problem".
fn refused_key(text: &str) -> String {
    let e = refused(text);
    assert_eq!(e.to_string(), format!("{}: {}", e.key, e.problem));
    e.key
}

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bmsc.toml")
}

fn at(text: &str) -> SystemTime {
    parse_rfc3339(text).expect("time")
}

#[test]
fn the_example_loads_with_every_key() {
    Config::load(&example_path()).expect("examples/bmsc.toml loads");
    let text = std::fs::read_to_string(example_path()).expect("read");
    let c = parse(&text).expect("parses");
    assert_eq!(c.fqdn, "bmsc.mnc001.mcc001.pub.3gppnetwork.org");
    assert_eq!(
        c.http_listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        c.admin_listen,
        "127.0.0.1:9090".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.ue_port, 2269);
    assert_eq!(c.data_dir, PathBuf::from("./bmsc-data"));
    // Apart from data_dir, as its comment says.
    assert_eq!(c.kek_file, PathBuf::from("./bmsc-secrets/kek"));
    assert!(!c.kek_file.starts_with(&c.data_dir));
    assert_eq!(c.log_format, LogFormat::Human);
    assert_eq!(c.digest.qop, Qop::AuthInt);
    assert_eq!(c.digest.algorithm, DigestAlgorithm::Sha256);
    assert_eq!(c.gba.subscribers().len(), 2);
    assert_eq!(c.services.len(), 2);
    let news = c.service("urn:example:mbms:news").expect("news");
    assert!(matches!(news.transport, Transport::Download { .. }));
    assert_eq!(news.authorized, Authorized::Everyone);
    let tv = c.service("urn:example:mbms:tv").expect("tv");
    assert_eq!(
        tv.transport,
        Transport::Streaming {
            ssrc: 0x1234_5678,
            roc: 0
        }
    );
    assert_eq!(tv.msk_lifetime, Duration::from_secs(9000));
    assert_eq!(tv.mtk_destination, "239.255.10.2:2269".parse().unwrap());
    assert!(
        tv.authorized
            .allows("001010123456789@ims.mnc001.mcc001.3gppnetwork.org")
    );
    assert!(tv.authorized.allows("bob@lab.example.org"));
    assert!(!tv.authorized.allows("mallory@elsewhere.example"));
    assert!(c.warnings(at("2030-01-01T00:00:00Z")).is_empty());
}

#[test]
fn the_example_subscriber_keys_are_derived_for_the_bmsc_naf_id() {
    let c = parse(&std::fs::read_to_string(example_path()).unwrap()).expect("parses");
    let src = c.key_source().expect("key source");
    let keys = src
        .lookup(
            "ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org",
            at("2030-01-01T00:00:00Z"),
        )
        .expect("known");
    // docs/spec-notes.md §5.2: Ks_NAF for this FQDN, Ks and RAND.
    match keys.keys {
        GbaKeys::Me { ks_naf } => assert_eq!(
            hex::encode(ks_naf.as_bytes()),
            "7075e981aa34117f3600ea992ce645560ad808a80205590fa662094da10d7b3a"
        ),
        GbaKeys::U { .. } => panic!("GBA_ME expected"),
    }
    assert_eq!(
        src.lookup("nobody@bsf", SystemTime::UNIX_EPOCH).map(|_| ()),
        Err(KeySourceError::UnknownBtid)
    );
}

#[test]
fn defaults_apply_to_a_minimal_file() {
    let c = parse(&format!("{TOP}{SERVICE}")).expect("minimal");
    assert_eq!(c.http_listen, "0.0.0.0:8080".parse::<SocketAddr>().unwrap());
    assert_eq!(
        c.admin_listen,
        "127.0.0.1:9090".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.kek_file, PathBuf::from("/var/lib/bmsc/kek"));
    assert_eq!(c.digest.nonce_lifetime, Duration::from_secs(300));
    assert_eq!(c.digest.max_nonces, 100_000);
    assert_eq!(c.http.request_timeout, Duration::from_secs(10));
    assert_eq!(c.http.idle_timeout, Duration::from_secs(60));
    assert_eq!((c.http.max_connections, c.http.max_body), (1024, 65_536));
    assert_eq!(c.push.retries, 4);
    assert_eq!(c.push.initial_backoff, Duration::from_secs(1));
    assert_eq!(c.push.max_backoff, Duration::from_secs(30));
    assert_eq!(c.cluster.takeover_after, Duration::from_secs(10));
    assert_eq!(c.cluster.follow_interval, Duration::from_secs(1));
    assert_eq!(c.cluster.fanout_item_size, 1024);
    assert_eq!(
        c.cluster.fanout_lease, None,
        "the fan-out lease is [push] initial_backoff by default"
    );
    assert_eq!(
        c.key_export_socket, None,
        "the key export is off by default"
    );
    let s = &c.services[0];
    assert_eq!(s.msk_lifetime, Duration::from_secs(3600));
    assert_eq!(s.mtk_interval, Duration::from_secs(10));
    assert_eq!(s.mtk_resend, Duration::from_secs(1));
    assert_eq!(s.mtk_destination, "239.1.1.1:2269".parse().unwrap());
    assert_eq!(
        s.transport,
        Transport::Download {
            mtk_object_dir: PathBuf::from("/var/lib/bmsc/mtk/svc-a")
        }
    );
}

#[test]
fn the_cluster_section_takes_positive_durations_and_item_size() {
    let c = parse(&format!(
        "{TOP}[cluster]\ntakeover_after = \"2s\"\nfollow_interval = \"250ms\"\n\
         fanout_item_size = 500\nfanout_lease = \"3s\"\n{SERVICE}"
    ))
    .expect("cluster");
    assert_eq!(c.cluster.takeover_after, Duration::from_secs(2));
    assert_eq!(c.cluster.follow_interval, Duration::from_millis(250));
    assert_eq!(c.cluster.fanout_item_size, 500);
    assert_eq!(c.cluster.fanout_lease, Some(Duration::from_secs(3)));
    assert_eq!(
        refused_key(&format!("{TOP}[cluster]\nfanout_item_size = 0\n{SERVICE}")),
        "cluster.fanout_item_size"
    );
    assert_eq!(
        refused_key(&format!("{TOP}[cluster]\nfanout_lease = \"0s\"\n{SERVICE}")),
        "cluster.fanout_lease"
    );
    assert_eq!(
        refused_key(&format!(
            "{TOP}[cluster]\ntakeover_after = \"0s\"\n{SERVICE}"
        )),
        "cluster.takeover_after"
    );
    assert_eq!(
        refused_key(&format!("{TOP}[cluster]\nleader = true\n{SERVICE}")),
        "cluster.leader"
    );
}

#[test]
fn the_store_is_sqlite_by_default_or_a_postgres_url_without_a_password() {
    assert_eq!(
        parse(&format!("{TOP}{SERVICE}")).expect("minimal").store,
        StoreConfig::Sqlite
    );
    let url = "postgres://mbms@db.example.org:5432/bmsc";
    let c = parse(&format!("store = \"{url}\"\n{TOP}{SERVICE}")).expect("URL");
    assert_eq!(
        c.store,
        StoreConfig::Postgres(PostgresConfig {
            url: url.to_owned(),
            password_file: None,
            password: None,
            pool_size: 8,
        })
    );
    let table = format!(
        "{TOP}{SERVICE}[store]\nurl = \"{url}\"\npassword_file = \"/run/secrets/db\"\npool_size = 3\n"
    );
    let c = Config::parse_with_env(&table, |n| {
        (n == "MBMS_PG_PASSWORD").then(|| OsString::from("s3cret-Zq4"))
    })
    .expect("table");
    let StoreConfig::Postgres(pg) = &c.store else {
        panic!("PostgreSQL expected");
    };
    assert_eq!(pg.password_file, Some(PathBuf::from("/run/secrets/db")));
    assert_eq!(pg.pool_size, 3);
    assert_eq!(pg.password, Some(Password::new("s3cret-Zq4".to_owned())));
    assert!(
        !format!("{c:?}").contains("s3cret-Zq4"),
        "the password in Debug"
    );

    // A password in the URL is refused, and the message does not repeat it.
    let e = refused(&format!(
        "store = \"postgres://mbms:hunter2x@db/bmsc\"\n{TOP}{SERVICE}"
    ));
    assert_eq!(e.key, "store");
    assert!(!e.to_string().contains("hunter2x"), "{e}");
    assert_eq!(
        refused_key(&format!(
            "{TOP}{SERVICE}[store]\nurl = \"postgres://db/bmsc?password=hunter2x\"\n"
        )),
        "store.url"
    );
    assert_eq!(
        refused_key(&format!("store = \"mysql://db/bmsc\"\n{TOP}{SERVICE}")),
        "store"
    );
    assert_eq!(refused_key(&format!("store = 5\n{TOP}{SERVICE}")), "store");
    assert_eq!(
        refused_key(&format!(
            "{TOP}{SERVICE}[store]\nurl = \"{url}\"\npool_size = 0\n"
        )),
        "store.pool_size"
    );
    assert_eq!(
        refused_key(&format!(
            "{TOP}{SERVICE}[store]\nurl = \"{url}\"\nuser = \"x\"\n"
        )),
        "store.user"
    );
    assert_eq!(
        refused_key(&format!("{TOP}{SERVICE}[store]\npassword_file = \"/x\"\n")),
        "store.url"
    );
}

#[test]
fn the_kek_file_environment_variable_overrides_the_key() {
    let text = format!("kek_file = \"/etc/bmsc/kek\"\n{TOP}");
    let c = Config::parse_with_env(&text, |n| {
        (n == "MBMS_KEK_FILE").then(|| OsString::from("/run/secrets/kek"))
    })
    .expect("parses");
    assert_eq!(c.kek_file, PathBuf::from("/run/secrets/kek"));
    assert_eq!(
        parse(&text).expect("parses").kek_file,
        PathBuf::from("/etc/bmsc/kek")
    );
}

#[test]
fn the_key_export_socket_is_an_absolute_path_in_an_existing_directory() {
    let dir = std::env::temp_dir();
    let ok = dir.join("mbms-keys.sock");
    let c = parse(&format!(
        "key_export_socket = \"{}\"\n{TOP}{SERVICE}",
        ok.display()
    ))
    .expect("accepted");
    assert_eq!(c.key_export_socket, Some(ok));
    for (path, problem) in [
        ("", "must not be empty"),
        ("keys.sock", "absolute path"),
        ("run/keys.sock", "absolute path"),
        ("/nonexistent-mbms-dir/keys.sock", "does not exist"),
        ("/", "must name a file"),
        ("/tmp/", "must name a file"),
    ] {
        let e = refused(&format!("key_export_socket = \"{path}\"\n{TOP}{SERVICE}"));
        assert_eq!(e.key, "key_export_socket", "{path:?}: {e}");
        assert!(e.problem.contains(problem), "{path:?}: {e}");
    }
    let long = format!("/tmp/{}.sock", "k".repeat(100));
    let e = refused(&format!("key_export_socket = \"{long}\"\n{TOP}{SERVICE}"));
    assert_eq!(e.key, "key_export_socket");
    assert!(e.problem.contains("at most 100 octets"), "{e}");
    assert_eq!(
        refused_key(&format!("key_export_socket = 1\n{TOP}{SERVICE}")),
        "key_export_socket"
    );
}

#[test]
fn unknown_keys_are_refused_at_every_level() {
    assert_eq!(refused_key(&format!("{TOP}colour = 1")), "colour");
    assert_eq!(
        refused_key(&format!("{TOP}[digest]\nnonce_life = \"5m\"")),
        "digest.nonce_life"
    );
    let e = refused(&format!("{TOP}{SERVICE}keydomain = \"00f110\""));
    assert_eq!(e.key, "services[0].keydomain");
    assert!(e.problem.contains("unknown key"), "{e}");
    assert_eq!(
        refused_key(&format!(
            "{TOP}{}[services.srtp]\nssrc = 1\nrocc = 0",
            SERVICE.replace("download", "streaming")
        )),
        "services[0].srtp.rocc"
    );
}

#[test]
fn required_keys_are_named_when_missing() {
    assert_eq!(refused_key("data_dir = \"/x\""), "fqdn");
    assert_eq!(refused_key("fqdn = \"bmsc.example.org\""), "data_dir");
    assert_eq!(
        refused_key(&format!("{TOP}{}", SERVICE.replace("key_group = 1\n", ""))),
        "services[0].key_group"
    );
    assert_eq!(
        refused_key(&format!(
            "{TOP}{}",
            SERVICE.replace("authorized = \"*\"\n", "")
        )),
        "services[0].authorized"
    );
}

#[test]
fn wrong_types_name_the_key() {
    let e = refused(&format!("{TOP}ue_port = \"2269\""));
    assert_eq!(e.key, "ue_port");
    assert!(e.problem.contains("integer"), "{e}");
    assert_eq!(refused_key(&format!("{TOP}ue_port = 70000")), "ue_port");
    assert_eq!(refused_key(&format!("{TOP}ue_port = 0")), "ue_port");
    assert_eq!(
        refused_key(&format!("{TOP}[http]\nmax_body = -1")),
        "http.max_body"
    );
    assert_eq!(
        refused_key(&format!("{TOP}[push]\nretries = \"4\"")),
        "push.retries"
    );
}

#[test]
fn bad_key_domain_is_refused_with_its_index() {
    let two = format!(
        "{TOP}{SERVICE}{}",
        SERVICE.replace("svc-a", "svc-b").replace("00f110", "00f1")
    );
    let e = refused(&two);
    assert_eq!(
        e.to_string(),
        "services[1].key_domain: must be 6 hex digits (3 octets)"
    );
    assert_eq!(
        refused_key(&format!("{TOP}{}", SERVICE.replace("00f110", "00f11g"))),
        "services[0].key_domain"
    );
}

#[test]
fn duplicate_service_ids_are_refused() {
    let e = refused(&format!(
        "{TOP}{SERVICE}{}",
        SERVICE.replace("key_group = 1", "key_group = 2")
    ));
    assert_eq!(e.key, "services[1].id");
    assert!(e.problem.contains("svc-a"), "{e}");
}

#[test]
fn services_sharing_an_msk_must_agree_on_its_lifetime() {
    let b = SERVICE
        .replace("svc-a", "svc-b")
        .replace("239.1.1.1", "239.1.1.2");
    // Same (key_domain, key_group), same lifetime: one shared MSK.
    let c = parse(&format!("{TOP}{SERVICE}{b}")).expect("sharing is allowed");
    assert_eq!(c.services[0].msk_group(), c.services[1].msk_group());
    let e = refused(&format!(
        "{TOP}{SERVICE}{}",
        b.replace("key_group = 1", "key_group = 1\nmsk_lifetime = \"2h\"")
    ));
    assert_eq!(e.key, "services[1].msk_lifetime");
    assert!(e.problem.contains("svc-a"), "{e}");
}

#[test]
fn mtk_resend_may_not_exceed_mtk_interval() {
    let e = refused(&format!(
        "{TOP}{}",
        SERVICE.replace(
            "key_group = 1",
            "key_group = 1\nmtk_interval = \"10s\"\nmtk_resend = \"11s\""
        )
    ));
    assert_eq!(e.key, "services[0].mtk_resend");
    // Equal is fine: each MTK is sent once.
    parse(&format!(
        "{TOP}{}",
        SERVICE.replace(
            "key_group = 1",
            "key_group = 1\nmtk_interval = \"10s\"\nmtk_resend = \"10s\""
        )
    ))
    .expect("equal is allowed");
}

#[test]
fn zero_durations_are_refused() {
    assert_eq!(
        refused_key(&format!("{TOP}[digest]\nnonce_lifetime = \"0s\"")),
        "digest.nonce_lifetime"
    );
    assert_eq!(
        refused_key(&format!(
            "{TOP}{}",
            SERVICE.replace("key_group = 1", "key_group = 1\nmtk_interval = \"0ms\"")
        )),
        "services[0].mtk_interval"
    );
    assert_eq!(
        refused_key(&format!("{TOP}[http]\nidle_timeout = \"soon\"")),
        "http.idle_timeout"
    );
}

#[test]
fn an_msk_lifetime_beyond_the_mtk_id_space_is_refused() {
    let e = refused(&format!(
        "{TOP}{}",
        SERVICE.replace(
            "key_group = 1",
            "key_group = 1\nmsk_lifetime = \"1d\"\nmtk_interval = \"1s\"\nmtk_resend = \"1s\""
        )
    ));
    assert_eq!(e.key, "services[0].msk_lifetime");
}

#[test]
fn an_msk_lifetime_beyond_the_counter_window_is_refused() {
    // 2^31 / 1024 s (24 d 6 h 32 m 32 s) is the RFC 1982 window of the counter floor.
    let with = |lifetime: &str| {
        format!(
            "{TOP}{}",
            SERVICE.replace(
                "key_group = 1",
                &format!("key_group = 1\nmsk_lifetime = \"{lifetime}\"\nmtk_interval = \"1h\"")
            )
        )
    };
    let e = refused(&with("25d"));
    assert_eq!(e.key, "services[0].msk_lifetime");
    assert!(e.to_string().contains("replay"), "{e}");
    assert!(parse(&with("24d")).is_ok());
}

#[test]
fn push_backoff_bounds_are_ordered() {
    assert_eq!(
        refused_key(&format!(
            "{TOP}[push]\ninitial_backoff = \"10s\"\nmax_backoff = \"5s\""
        )),
        "push.max_backoff"
    );
}

#[test]
fn subscriber_key_material_forms_are_exclusive() {
    let none = SUBSCRIBER.replace(
        "ks_naf = \"0101010101010101010101010101010101010101010101010101010101010101\"\n",
        "",
    );
    let e = refused(&format!("{TOP}{none}"));
    assert_eq!(e.key, "gba.subscribers[0]");
    assert!(e.problem.contains("exactly one"), "{e}");
    let two = SUBSCRIBER.replace(
        "expires",
        "ks = \"0202020202020202020202020202020202020202020202020202020202020202\"\n\
         rand = \"03030303030303030303030303030303\"\nexpires",
    );
    assert_eq!(refused_key(&format!("{TOP}{two}")), "gba.subscribers[0]");
    let ks_without_rand = none.replace(
        "expires",
        "ks = \"0202020202020202020202020202020202020202020202020202020202020202\"\nexpires",
    );
    assert_eq!(
        refused_key(&format!("{TOP}{ks_without_rand}")),
        "gba.subscribers[0].rand"
    );
    let half_gba_u = none.replace(
        "expires",
        "ks_int_naf = \"0202020202020202020202020202020202020202020202020202020202020202\"\nexpires",
    );
    assert_eq!(
        refused_key(&format!("{TOP}{half_gba_u}")),
        "gba.subscribers[0].ks_ext_naf"
    );
    let gba_u_flag = SUBSCRIBER.replace("expires", "gba_u = true\nexpires");
    assert_eq!(
        refused_key(&format!("{TOP}{gba_u_flag}")),
        "gba.subscribers[0].gba_u"
    );
}

#[test]
fn subscriber_hex_lengths_are_checked_without_echoing_keys() {
    let short = SUBSCRIBER.replace(
        "0101010101010101010101010101010101010101010101010101010101010101",
        "01020304",
    );
    let e = refused(&format!("{TOP}{short}"));
    assert_eq!(e.key, "gba.subscribers[0].ks_naf");
    assert!(!e.to_string().contains("01020304"), "{e}");
    let bad_rand = SUBSCRIBER.replace(
        "ks_naf = \"0101010101010101010101010101010101010101010101010101010101010101\"",
        "ks = \"0202020202020202020202020202020202020202020202020202020202020202\"\n\
         rand = \"0303\"",
    );
    assert_eq!(
        refused_key(&format!("{TOP}{bad_rand}")),
        "gba.subscribers[0].rand"
    );
}

#[test]
fn gba_u_subscribers_from_ks_and_rand_get_both_naf_keys() {
    let u = SUBSCRIBER.replace(
        "ks_naf = \"0101010101010101010101010101010101010101010101010101010101010101\"",
        "ks = \"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\"\n\
         rand = \"202122232425262728292a2b2c2d2e2f\"\ngba_u = true",
    );
    let c = parse(&format!("{TOP}{u}")).expect("parses");
    let keys = c
        .key_source()
        .expect("source")
        .lookup("b1@bsf.example.org", at("2030-01-01T00:00:00Z"))
        .expect("known");
    assert!(matches!(keys.keys, GbaKeys::U { .. }));
    assert!(!format!("{c:?}").contains("0001020304"));
}

#[test]
fn expired_subscribers_only_warn() {
    let old = SUBSCRIBER.replace("2035-01-01T00:00:00Z", "2020-01-01T00:00:00Z");
    let c = parse(&format!("{TOP}{old}")).expect("accepted");
    let w = c.warnings(at("2026-01-01T00:00:00Z"));
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].key, "gba.subscribers[0].expires");
}

#[test]
fn subscriber_identities_are_checked() {
    assert_eq!(
        refused_key(&format!(
            "{TOP}{}",
            SUBSCRIBER.replace("b1@bsf.example.org", "no-at-sign")
        )),
        "gba.subscribers[0].btid"
    );
    assert_eq!(
        refused_key(&format!("{TOP}{SUBSCRIBER}{SUBSCRIBER}")),
        "gba.subscribers[1].btid"
    );
    assert_eq!(
        refused_key(&format!(
            "{TOP}{}",
            SUBSCRIBER.replace("alice@ims.example.org", "alice")
        )),
        "gba.subscribers[0].impi"
    );
    assert_eq!(
        refused_key(&format!(
            "{TOP}{}",
            SUBSCRIBER.replace("2035-01-01T00:00:00Z", "2035-01-01")
        )),
        "gba.subscribers[0].expires"
    );
}

#[test]
fn invalid_fqdns_are_refused() {
    for bad in [
        "",
        "localhost",
        "bmsc.example.org.",
        "bmsc..example.org",
        "-bmsc.example.org",
        "bmsc_1.example.org",
        &format!("{}.org", "a".repeat(64)),
    ] {
        let e = refused(&format!("fqdn = \"{bad}\"\ndata_dir = \"/d\""));
        assert_eq!(e.key, "fqdn", "{bad:?}");
    }
}

#[test]
fn transport_specific_keys_are_checked() {
    assert_eq!(
        refused_key(&format!(
            "{TOP}{}",
            SERVICE.replace("download", "multicast")
        )),
        "services[0].transport"
    );
    assert_eq!(
        refused_key(&format!(
            "{TOP}{}",
            SERVICE.replace("download", "streaming")
        )),
        "services[0].srtp"
    );
    assert_eq!(
        refused_key(&format!("{TOP}{SERVICE}[services.srtp]\nssrc = 1")),
        "services[0].srtp"
    );
    assert_eq!(
        refused_key(&format!(
            "{TOP}{}[services.srtp]\nssrc = 4294967296",
            SERVICE.replace("download", "streaming")
        )),
        "services[0].srtp.ssrc"
    );
}

#[test]
fn mtk_destinations_take_an_optional_port() {
    let with = |dest: &str| format!("{TOP}{}", SERVICE.replace("239.1.1.1", dest));
    let c = parse(&with("[ff15::1]:5000")).expect("v6 with port");
    assert_eq!(
        c.services[0].mtk_destination,
        "[ff15::1]:5000".parse().unwrap()
    );
    let c = parse(&with("ff15::1")).expect("v6 without port");
    assert_eq!(
        c.services[0].mtk_destination,
        "[ff15::1]:2269".parse().unwrap()
    );
    let c = parse(&with("10.0.0.7:4000")).expect("unicast");
    assert_eq!(c.services[0].mtk_destination.port(), 4000);
    for bad in ["239.1.1.1:0", "0.0.0.0", "239.1.1", "host.example:2269"] {
        assert_eq!(
            refused_key(&with(bad)),
            "services[0].mtk_destination",
            "{bad}"
        );
    }
}

#[test]
fn authorized_is_star_or_a_pattern_list() {
    let with = |a: &str| format!("{TOP}{}", SERVICE.replace("authorized = \"*\"", a));
    assert_eq!(
        refused_key(&with("authorized = \"alice@*\"")),
        "services[0].authorized"
    );
    assert_eq!(
        refused_key(&with("authorized = []")),
        "services[0].authorized"
    );
    assert_eq!(
        refused_key(&with("authorized = [\"a@*\", 5]")),
        "services[0].authorized[1]"
    );
    assert_eq!(
        refused_key(&with("authorized = [\"a@*\", \"\"]")),
        "services[0].authorized[1]"
    );
    let c = parse(&with("authorized = [\"*@ims.example.org\"]")).expect("list");
    assert!(c.services[0].authorized.allows("alice@ims.example.org"));
    assert!(
        !c.services[0]
            .authorized
            .allows("alice@ims.example.org.evil")
    );
}

#[test]
fn listeners_and_enums_are_checked() {
    assert_eq!(
        refused_key(&format!("{TOP}http_listen = \"localhost\"")),
        "http_listen"
    );
    assert_eq!(
        refused_key(&format!(
            "{TOP}http_listen = \"127.0.0.1:9090\"\nadmin_listen = \"127.0.0.1:9090\""
        )),
        "admin_listen"
    );
    assert_eq!(
        refused_key(&format!("{TOP}log_format = \"xml\"")),
        "log_format"
    );
    assert_eq!(
        refused_key(&format!("{TOP}[digest]\nqop = \"auth-conf\"")),
        "digest.qop"
    );
    assert_eq!(
        refused_key(&format!("{TOP}[digest]\nalgorithm = \"sha-256\"")),
        "digest.algorithm"
    );
    let c = parse(&format!(
        "{TOP}[digest]\nqop = \"auth,auth-int\"\nalgorithm = \"MD5\""
    ))
    .expect("parses");
    assert_eq!(
        (c.digest.qop, c.digest.algorithm),
        (Qop::Both, DigestAlgorithm::Md5)
    );
}

#[test]
fn toml_syntax_errors_name_the_line() {
    let e = refused("fqdn = \"bmsc.example.org\"\ndata_dir = \n");
    assert!(e.key.starts_with("line 2"), "{e}");
}

#[test]
fn a_missing_file_names_the_path() {
    let e = Config::load(Path::new("/nonexistent/bmsc.toml")).expect_err("missing");
    assert_eq!(e.key, "/nonexistent/bmsc.toml");
}

#[test]
fn duration_syntax_edges() {
    let ok = |t: &str, ms: u64| assert_eq!(parse_duration(t), Ok(Duration::from_millis(ms)), "{t}");
    ok("90s", 90_000);
    ok("10m", 600_000);
    ok("1h", 3_600_000);
    ok("2h30m", 9_000_000);
    ok("500ms", 500);
    ok("1m500ms", 60_500);
    ok("1d1h1m1s1ms", 90_061_001);
    ok("0s", 0);
    ok("007s", 7_000);
    for bad in [
        "",
        "10",
        "s",
        "1.5h",
        "-1s",
        "+1s",
        " 1s",
        "1s ",
        "1 s",
        "30m1h",
        "1s1s",
        "1sec",
        "1H",
        "1us",
        "99999999999999999999s",
        "18446744073709551615d",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn rfc3339_time_edges() {
    let epoch = SystemTime::UNIX_EPOCH;
    assert_eq!(at("1970-01-01T00:00:00Z"), epoch);
    assert_eq!(at("1970-01-01t00:00:00z"), epoch);
    assert_eq!(at("1970-01-01 00:00:00Z"), epoch);
    assert_eq!(at("1970-01-01T01:00:00+01:00"), epoch);
    assert_eq!(at("1969-12-31T23:00:00-01:00"), epoch);
    assert_eq!(at("1970-01-01T00:00:00-00:00"), epoch);
    assert_eq!(
        at("1970-01-01T00:00:00.5Z"),
        epoch + Duration::from_millis(500)
    );
    assert_eq!(
        at("1970-01-01T00:00:00.000000001Z"),
        epoch + Duration::from_nanos(1)
    );
    assert_eq!(
        at("2000-03-01T00:00:00Z")
            .duration_since(at("2000-02-28T00:00:00Z"))
            .ok(),
        Some(Duration::from_secs(2 * 86_400))
    );
    assert_eq!(
        at("2038-01-19T03:14:08Z"),
        epoch + Duration::from_secs(1 << 31)
    );
    assert_eq!(
        epoch.duration_since(at("1969-12-31T23:59:59.5Z")).ok(),
        Some(Duration::from_millis(500))
    );
    assert!(parse_rfc3339("2024-02-29T00:00:00Z").is_ok());
    for bad in [
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2030-04-31T00:00:00Z",
        "2030-13-01T00:00:00Z",
        "2030-00-01T00:00:00Z",
        "2030-01-00T00:00:00Z",
        "2030-01-01T24:00:00Z",
        "2030-01-01T00:60:00Z",
        "2016-12-31T23:59:60Z",
        "2030-01-01T00:00:00",
        "2030-01-01",
        "2030-01-01T00:00:00.Z",
        "2030-01-01T00:00:00.1234567890Z",
        "2030-01-01T00:00:00+0100",
        "2030-01-01T00:00:00+24:00",
        "2030-1-01T00:00:00Z",
        "+030-01-01T00:00:00Z",
        "2030-01-01T00:00:00ZZ",
        "2030-01-01X00:00:00Z",
    ] {
        assert!(parse_rfc3339(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn toml_native_datetimes_are_accepted_for_expires() {
    let native = SUBSCRIBER.replace("\"2035-01-01T00:00:00Z\"", "2035-01-01T00:00:00Z");
    let c = parse(&format!("{TOP}{native}")).expect("native datetime");
    assert_eq!(c.gba.subscribers()[0].expires, at("2035-01-01T00:00:00Z"));
    let local = SUBSCRIBER.replace("\"2035-01-01T00:00:00Z\"", "2035-01-01T00:00:00");
    assert_eq!(
        refused_key(&format!("{TOP}{local}")),
        "gba.subscribers[0].expires"
    );
}

#[test]
fn debug_of_a_config_never_shows_key_material() {
    let c = parse(&format!("{TOP}{SUBSCRIBER}")).expect("parses");
    let text = format!("{c:?}");
    assert!(text.contains("REDACTED"));
    assert!(
        !text.contains("0101010101") && !text.contains("1, 1, 1"),
        "{text}"
    );
}

const ZN_BASE: &str = "fqdn = \"bmsc.example.test\"\nhttp_listen = \"127.0.0.1:0\"\n\
                       data_dir = \"/tmp/x\"\n";

#[test]
fn gba_zn_reads_every_key_and_its_defaults() {
    use mbms_keys::bmsc::config::KeySourceConfig;
    let full = format!(
        "{ZN_BASE}[gba.zn]\npeers = [\"a.example:3868\", \"127.0.0.1:13868\"]\n\
         origin_host = \"bmsc.example.test\"\norigin_realm = \"example.test\"\n\
         destination_realm = \"bsf.test\"\ndestination_host = \"bsf1.bsf.test\"\n\
         request_timeout = \"750ms\"\nwatchdog = \"6s\"\nreconnect_max = \"10s\"\n\
         max_concurrent = 8\ngba_u_aware = false\n"
    );
    let c = parse(&full).expect("parses");
    let KeySourceConfig::Zn(z) = &c.gba.source else {
        panic!("expected Zn")
    };
    assert_eq!(z.peers, vec!["a.example:3868", "127.0.0.1:13868"]);
    assert_eq!(z.origin_host, "bmsc.example.test");
    assert_eq!(z.origin_realm, "example.test");
    assert_eq!(z.destination_realm, "bsf.test");
    assert_eq!(z.destination_host.as_deref(), Some("bsf1.bsf.test"));
    assert_eq!(z.request_timeout, Duration::from_millis(750));
    assert_eq!(z.watchdog, Duration::from_secs(6));
    assert_eq!(z.reconnect_max, Duration::from_secs(10));
    assert_eq!(z.max_concurrent, 8);
    assert!(!z.gba_u_aware);
    assert!(c.gba.subscribers().is_empty());

    let min = format!(
        "{ZN_BASE}[gba.zn]\npeers = \"bsf:3868\"\norigin_host = \"b\"\norigin_realm = \"r\"\n\
         destination_realm = \"d\"\n"
    );
    let c = parse(&min).expect("parses");
    let KeySourceConfig::Zn(z) = &c.gba.source else {
        panic!("expected Zn")
    };
    assert_eq!(z.request_timeout, Duration::from_secs(2));
    assert_eq!(z.watchdog, Duration::from_secs(30));
    assert_eq!(z.max_concurrent, 256);
    assert!(z.gba_u_aware);
    assert_eq!(z.destination_host, None);
}

#[test]
fn gba_zn_errors_name_the_key() {
    let base = "origin_host = \"b\"\norigin_realm = \"r\"\ndestination_realm = \"d\"\n";
    for (zn, key) in [
        (base.to_owned(), "gba.zn.peers"),
        (format!("peers = []\n{base}"), "gba.zn.peers"),
        (format!("peers = [\"nohost\"]\n{base}"), "gba.zn.peers[0]"),
        (format!("peers = [\"h:0\"]\n{base}"), "gba.zn.peers[0]"),
        (
            "peers = [\"h:1\"]\norigin_realm = \"r\"\ndestination_realm = \"d\"\n".to_owned(),
            "gba.zn.origin_host",
        ),
        (
            format!("peers = [\"h:1\"]\n{base}watchdog = \"0s\"\n"),
            "gba.zn.watchdog",
        ),
        (
            format!("peers = [\"h:1\"]\n{base}max_concurrent = 0\n"),
            "gba.zn.max_concurrent",
        ),
        (
            format!("peers = [\"h:1\"]\n{base}bogus = 1\n"),
            "gba.zn.bogus",
        ),
        (
            "peers = [\"h:1\"]\norigin_host = \"a b\"\norigin_realm = \"r\"\ndestination_realm = \"d\"\n"
                .to_owned(),
            "gba.zn.origin_host",
        ),
    ] {
        let e = parse(&format!("{ZN_BASE}[gba.zn]\n{zn}")).expect_err(key);
        assert_eq!(e.key, key, "{zn}: {e}");
    }
}
