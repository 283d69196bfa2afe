//! The configuration of a streaming service's SRTP sender and of multicast: defaults, and every
//! refusal naming its key.

use std::ffi::OsString;
use std::net::Ipv4Addr;

use mbms_keys::bmsc::config::{
    Config, ConfigError, DEFAULT_KEY_LEAD, MulticastConfig, MulticastInterface, SrtpSuite,
};

const TOP: &str = "fqdn = \"bmsc.example.org\"\ndata_dir = \"/var/lib/bmsc\"\n";

fn service(srtp: &str, extra: &str) -> String {
    format!(
        "{TOP}\n[[services]]\nid = \"tv\"\nkey_domain = \"00f110\"\nkey_group = 1\n\
         mtk_destination = \"239.1.1.1\"\ntransport = \"streaming\"\nauthorized = \"*\"\n{extra}\n\
         [services.srtp]\nssrc = 7\n{srtp}\n"
    )
}

const SENDER: &str = "rtp_input = \"127.0.0.1:5004\"\nmedia_destination = \"239.2.2.2:5004\"";

fn no_env(_: &str) -> Option<OsString> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_with_env(text, no_env)
}

fn refused_key(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            assert_eq!(e.to_string(), format!("{}: {}", e.key, e.problem));
            e.key
        }
    }
}

#[test]
fn a_streaming_service_without_rtp_input_has_no_sender() {
    let c = parse(&service("", "")).unwrap();
    assert_eq!(c.services[0].media, None);
    assert_eq!(c.multicast, MulticastConfig::default());
    assert_eq!(c.services[0].multicast.ttl, 1);
}

#[test]
fn the_sender_defaults_are_the_80_bit_suite_with_mki_and_a_lead_of_two() {
    let c = parse(&service(SENDER, "")).unwrap();
    let m = c.services[0].media.as_ref().expect("sender");
    assert_eq!(m.rtp_input, "127.0.0.1:5004".parse().unwrap());
    assert_eq!(m.media_destination, "239.2.2.2:5004".parse().unwrap());
    assert_eq!(m.suite, SrtpSuite::AesCm128HmacSha1_80);
    assert!(m.mki);
    assert_eq!(m.key_lead, DEFAULT_KEY_LEAD);
    assert!(m.udp_offload);
}

#[test]
fn every_sender_key_is_read() {
    let c = parse(&service(
        &format!(
            "{SENDER}\nsuite = \"AES_CM_128_HMAC_SHA1_32\"\nmki = false\nkey_lead = 3\nudp_offload = false"
        ),
        "multicast_ttl = 8\nmulticast_interface = \"127.0.0.1\"",
    ))
    .unwrap();
    let s = &c.services[0];
    let m = s.media.as_ref().unwrap();
    assert_eq!(
        (m.suite, m.mki, m.key_lead, m.udp_offload),
        (SrtpSuite::AesCm128HmacSha1_32, false, 3, false)
    );
    assert_eq!(s.multicast.ttl, 8);
    assert_eq!(
        s.multicast.interface,
        Some(MulticastInterface::V4(Ipv4Addr::LOCALHOST))
    );
}

#[test]
fn services_inherit_the_global_multicast_options() {
    let text = service(SENDER, "").replace(
        "data_dir = \"/var/lib/bmsc\"\n",
        "data_dir = \"/var/lib/bmsc\"\nmulticast_ttl = 4\nmulticast_interface = \"1\"\n",
    );
    let text = text
        .replace("239.1.1.1", "ff15::1")
        .replace("239.2.2.2:5004", "[ff15::2]:5004");
    let c = parse(&text).unwrap();
    assert_eq!(c.multicast.ttl, 4);
    assert_eq!(c.services[0].multicast, c.multicast);
    assert_eq!(c.multicast.interface, Some(MulticastInterface::V6(1)));
}

#[test]
fn each_bad_value_is_refused_naming_its_key() {
    let cases = [
        ("rtp_input = \"nowhere\"", "services[0].srtp.rtp_input"),
        (
            "rtp_input = \"127.0.0.1:0\"\nmedia_destination = \"127.0.0.1:9\"",
            "services[0].srtp.rtp_input",
        ),
        (
            "rtp_input = \"239.0.0.1:5\"\nmedia_destination = \"127.0.0.1:9\"",
            "services[0].srtp.rtp_input",
        ),
        (
            "rtp_input = \"127.0.0.1:5004\"",
            "services[0].srtp.media_destination",
        ),
        (
            "rtp_input = \"127.0.0.1:5004\"\nmedia_destination = \"239.2.2.2\"",
            "services[0].srtp.media_destination",
        ),
        (
            "rtp_input = \"127.0.0.1:5004\"\nmedia_destination = \"127.0.0.1:5004\"",
            "services[0].srtp.media_destination",
        ),
        (
            "media_destination = \"239.2.2.2:5004\"",
            "services[0].srtp.media_destination",
        ),
        (
            "suite = \"AES_CM_128_HMAC_SHA1_32\"",
            "services[0].srtp.suite",
        ),
        (
            &format!("{SENDER}\nsuite = \"AEAD_AES_128_GCM\""),
            "services[0].srtp.suite",
        ),
        (&format!("{SENDER}\nmki = \"yes\""), "services[0].srtp.mki"),
        (
            &format!("{SENDER}\nkey_lead = 0"),
            "services[0].srtp.key_lead",
        ),
        (
            &format!("{SENDER}\nkey_lead = 17"),
            "services[0].srtp.key_lead",
        ),
        (&format!("{SENDER}\nroc = 65536"), "services[0].srtp.roc"),
        (&format!("{SENDER}\nbogus = 1"), "services[0].srtp.bogus"),
    ];
    for (srtp, key) in cases {
        assert_eq!(refused_key(&service(srtp, "")), key, "{srtp}");
    }
    for (extra, key) in [
        ("multicast_ttl = 256", "services[0].multicast_ttl"),
        (
            "multicast_interface = \"no-such-interface0\"",
            "services[0].multicast_interface",
        ),
        (
            "multicast_interface = \"0\"",
            "services[0].multicast_interface",
        ),
        (
            "multicast_interface = \"::1\"",
            "services[0].multicast_interface",
        ),
        (
            "multicast_interface = \"239.0.0.1\"",
            "services[0].multicast_interface",
        ),
        // An IPv6 interface for IPv4 groups.
        (
            "multicast_interface = \"1\"",
            "services[0].multicast_interface",
        ),
    ] {
        assert_eq!(refused_key(&service(SENDER, extra)), key, "{extra}");
    }
    let global = service(SENDER, "").replace(
        "data_dir = \"/var/lib/bmsc\"\n",
        "data_dir = \"/var/lib/bmsc\"\nmulticast_ttl = -1\n",
    );
    assert_eq!(refused_key(&global), "multicast_ttl");
}

#[test]
fn two_services_cannot_share_an_rtp_input() {
    let one = service(SENDER, "");
    let two = format!(
        "{one}\n[[services]]\nid = \"tv2\"\nkey_domain = \"00f110\"\nkey_group = 2\n\
         mtk_destination = \"239.1.1.1\"\ntransport = \"streaming\"\nauthorized = \"*\"\n\
         [services.srtp]\nssrc = 8\n{SENDER}\n"
    );
    assert_eq!(refused_key(&two), "services[1].srtp.rtp_input");
}

#[test]
fn a_download_service_takes_no_srtp() {
    let text = format!(
        "{TOP}\n[[services]]\nid = \"dl\"\nkey_domain = \"00f110\"\nkey_group = 1\n\
         mtk_destination = \"239.1.1.1\"\ntransport = \"download\"\nauthorized = \"*\"\n\
         [services.srtp]\n{SENDER}\n"
    );
    assert_eq!(refused_key(&text), "services[0].srtp");
}
