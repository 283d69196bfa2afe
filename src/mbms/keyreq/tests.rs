use super::*;

fn kd() -> KeyDomainId {
    "00f110".parse().expect("hex")
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn register_body_is_exactly_the_profile_body() {
    let r = RegisterRequest::register(&ids(&["urn:example:mbms:news"]));
    assert_eq!(
        r.to_xml(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <mbmsRegister xmlns=\"urn:mbms-keys:keymanagement:1\">\n  \
         <serviceId>urn:example:mbms:news</serviceId>\n\
         </mbmsRegister>\n"
    );
    let d = RegisterRequest::deregister(&ids(&["urn:example:mbms:news"]));
    assert!(d.to_xml().contains("<mbmsDeregister xmlns="));
    assert!(d.to_xml().ends_with("</mbmsDeregister>\n"));
}

#[test]
fn msk_bodies_are_exactly_the_profile_bodies() {
    let req = MskRequest::new(&[(kd(), MskId::new(1, 0))]);
    assert_eq!(
        req.to_xml(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <mbmsMskRequest xmlns=\"urn:mbms-keys:keymanagement:1\">\n  \
         <msk keyDomainId=\"00f110\" mskId=\"00010000\"/>\n\
         </mbmsMskRequest>\n"
    );
    let resp = MskResponse {
        statuses: vec![MskStatus {
            msk: MskRef::Id(kd(), MskId::new(1, 0)),
            code: 200,
        }],
    };
    assert_eq!(
        resp.to_xml(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <mbmsMskResponse xmlns=\"urn:mbms-keys:keymanagement:1\">\n  \
         <status keyDomainId=\"00f110\" mskId=\"00010000\" code=\"200\"/>\n\
         </mbmsMskResponse>\n"
    );
    let reg = RegisterResponse {
        statuses: vec![ServiceStatus {
            service_id: "urn:example:mbms:news".into(),
            code: 200,
        }],
    };
    assert_eq!(
        reg.to_xml(),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <mbmsRegisterResponse xmlns=\"urn:mbms-keys:keymanagement:1\">\n  \
         <status serviceId=\"urn:example:mbms:news\" code=\"200\"/>\n\
         </mbmsRegisterResponse>\n"
    );
}

#[test]
fn every_body_round_trips() {
    let services = ids(&["urn:a", "urn:b&c<d>\"e'", "urn:ü"]);
    for r in [
        RegisterRequest::register(&services),
        RegisterRequest::deregister(&services),
    ] {
        assert_eq!(RegisterRequest::parse(r.to_xml().as_bytes()), Ok(r));
    }
    let reg = RegisterResponse {
        statuses: vec![
            ServiceStatus {
                service_id: "urn:a".into(),
                code: 200,
            },
            ServiceStatus {
                service_id: "urn:b&c".into(),
                code: 404,
            },
        ],
    };
    assert_eq!(RegisterResponse::parse(reg.to_xml().as_bytes()), Ok(reg));
    let req = MskRequest::new(&[
        (kd(), MskId::new(1, 0)),
        (KeyDomainId([0x13, 0x00, 0x14]), MskId::new(0xabcd, 0xef01)),
    ]);
    assert_eq!(MskRequest::parse(req.to_xml().as_bytes()), Ok(req));
    let resp = MskResponse {
        statuses: vec![
            MskStatus {
                msk: MskRef::Id(kd(), MskId::new(1, 2)),
                code: 200,
            },
            MskStatus {
                msk: MskRef::Malformed {
                    key_domain_id: "00f110".into(),
                    msk_id: "xyz\"<".into(),
                },
                code: 400,
            },
        ],
    };
    assert_eq!(MskResponse::parse(resp.to_xml().as_bytes()), Ok(resp));
}

#[test]
fn elements_are_read_with_or_without_the_namespace() {
    let want = RegisterRequest::register(&ids(&["urn:x"]));
    for body in [
        "<mbmsRegister><serviceId>urn:x</serviceId></mbmsRegister>",
        "<mbmsRegister xmlns=\"urn:mbms-keys:keymanagement:1\"><serviceId>urn:x</serviceId></mbmsRegister>",
        "<k:mbmsRegister xmlns:k=\"urn:mbms-keys:keymanagement:1\"><k:serviceId>urn:x</k:serviceId></k:mbmsRegister>",
        "<zz:mbmsRegister xmlns:zz=\"urn:mbms-keys:keymanagement:1\">\n <zz:serviceId>\n  urn:x \n</zz:serviceId>\n</zz:mbmsRegister>",
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><!-- c --><mbmsRegister><serviceId><![CDATA[urn:x]]></serviceId></mbmsRegister>",
        "\u{feff}<mbmsRegister><serviceId>urn&#x3a;x</serviceId></mbmsRegister>",
    ] {
        assert_eq!(
            RegisterRequest::parse(body.as_bytes()),
            Ok(want.clone()),
            "{body}"
        );
    }
    let msk = "<p:mbmsMskRequest xmlns:p=\"urn:mbms-keys:keymanagement:1\"><p:msk p:keyDomainId=\"00f110\" mskId=\"00010000\" xml:lang=\"en\"/></p:mbmsMskRequest>";
    assert_eq!(
        MskRequest::parse(msk.as_bytes()),
        Ok(MskRequest::new(&[(kd(), MskId::new(1, 0))]))
    );
}

#[test]
fn a_foreign_namespace_or_unknown_prefix_is_refused() {
    let foreign = "<mbmsRegister xmlns=\"urn:other\"><serviceId>u</serviceId></mbmsRegister>";
    assert!(matches!(
        RegisterRequest::parse(foreign.as_bytes()),
        Err(XmlError::ForeignNamespace { .. })
    ));
    let mixed = "<mbmsRegister xmlns:o=\"urn:other\"><o:serviceId>u</o:serviceId></mbmsRegister>";
    assert!(matches!(
        RegisterRequest::parse(mixed.as_bytes()),
        Err(XmlError::ForeignNamespace { .. })
    ));
    let unknown = "<q:mbmsRegister><q:serviceId>u</q:serviceId></q:mbmsRegister>";
    assert!(matches!(
        RegisterRequest::parse(unknown.as_bytes()),
        Err(XmlError::UnknownPrefix(_))
    ));
}

#[test]
fn a_malformed_msk_item_is_kept_for_a_per_item_400() {
    let body = "<mbmsMskRequest>\
        <msk keyDomainId=\"00f110\" mskId=\"00010002\"/>\
        <msk keyDomainId=\"00f110\" mskId=\"0001000\"/>\
        <msk keyDomainId=\"00f110\" mskId=\"0x010000\"/>\
        <msk keyDomainId=\"zzzzzz\" mskId=\"00010000\"/>\
        <msk mskId=\"00010000\"/>\
        <msk keyDomainId=\"00F110\" mskId=\"0001FFFF\"/>\
        </mbmsMskRequest>";
    let req = MskRequest::parse(body.as_bytes()).expect("request stays readable");
    let got: Vec<Option<(KeyDomainId, MskId)>> = req.msks.iter().map(MskRef::ids).collect();
    assert_eq!(
        got,
        vec![
            Some((kd(), MskId::new(1, 2))),
            None,
            None,
            None,
            None,
            Some((kd(), MskId::new(1, 0xffff))),
        ]
    );
    assert_eq!(
        req.msks[1],
        MskRef::Malformed {
            key_domain_id: "00f110".into(),
            msk_id: "0001000".into()
        }
    );
}

#[test]
fn an_empty_service_id_is_kept_for_a_per_item_400() {
    let body = "<mbmsRegister><serviceId>urn:a</serviceId><serviceId/><serviceId> </serviceId></mbmsRegister>";
    let r = RegisterRequest::parse(body.as_bytes()).expect("parses");
    assert_eq!(r.service_ids, ids(&["urn:a", "", ""]));
}

#[test]
fn a_request_needs_one_item() {
    assert_eq!(
        RegisterRequest::parse(b"<mbmsRegister/>"),
        Err(XmlError::NoItems("mbmsRegister"))
    );
    assert_eq!(
        MskRequest::parse(b"<mbmsMskRequest>\n</mbmsMskRequest>"),
        Err(XmlError::NoItems("mbmsMskRequest"))
    );
    assert_eq!(
        MskResponse::parse(b"<mbmsMskResponse/>"),
        Ok(MskResponse { statuses: vec![] })
    );
}

#[test]
fn an_unknown_root_or_element_is_refused() {
    assert!(matches!(
        RegisterRequest::parse(b"<mbmsMskRequest><msk/></mbmsMskRequest>"),
        Err(XmlError::UnknownRoot { .. })
    ));
    assert!(matches!(
        MskRequest::parse(b"<mskRequest/>"),
        Err(XmlError::UnknownRoot { .. })
    ));
    assert!(matches!(
        MskRequest::parse(b"<mbmsMskRequest><serviceId>x</serviceId></mbmsMskRequest>"),
        Err(XmlError::UnknownElement { .. })
    ));
    assert!(matches!(
        RegisterRequest::parse(b"<mbmsRegister>text<serviceId>x</serviceId></mbmsRegister>"),
        Err(XmlError::UnexpectedText)
    ));
    assert!(matches!(
        RegisterRequest::parse(b"<mbmsRegister><serviceId>x</serviceId></mbmsRegister><x/>"),
        Err(XmlError::Syntax { .. })
    ));
}

#[test]
fn response_codes_are_checked() {
    for bad in ["abc", "99", "600", "", "-1", "70000"] {
        let body = format!(
            "<mbmsRegisterResponse><status serviceId=\"u\" code=\"{bad}\"/></mbmsRegisterResponse>"
        );
        assert!(
            matches!(
                RegisterResponse::parse(body.as_bytes()),
                Err(XmlError::BadAttribute { .. })
            ),
            "{bad}"
        );
    }
    assert_eq!(
        RegisterResponse::parse(
            b"<mbmsRegisterResponse><status code=\"200\"/></mbmsRegisterResponse>"
        ),
        Err(XmlError::MissingAttribute {
            element: "status",
            attribute: "serviceId"
        })
    );
}

#[test]
fn doctype_is_refused() {
    let body = "<?xml version=\"1.0\"?><!DOCTYPE mbmsRegister SYSTEM \"file:///etc/passwd\">\
                <mbmsRegister><serviceId>x</serviceId></mbmsRegister>";
    assert_eq!(RegisterRequest::parse(body.as_bytes()), Err(XmlError::Dtd));
}

#[test]
fn billion_laughs_is_refused() {
    let mut body =
        String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        body.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&lol{};", i - 1).repeat(10)
        ));
    }
    body.push_str("]>\n<mbmsRegister><serviceId>&lol9;</serviceId></mbmsRegister>");
    assert_eq!(RegisterRequest::parse(body.as_bytes()), Err(XmlError::Dtd));
    // Without the DTD, the reference alone is an unknown entity.
    let bare = "<mbmsRegister><serviceId>&lol9;</serviceId></mbmsRegister>";
    assert_eq!(
        RegisterRequest::parse(bare.as_bytes()),
        Err(XmlError::Entity("lol9".into()))
    );
    let in_attr =
        "<mbmsMskRequest><msk keyDomainId=\"&lol9;\" mskId=\"00010000\"/></mbmsMskRequest>";
    assert!(matches!(
        MskRequest::parse(in_attr.as_bytes()),
        Err(XmlError::Entity(_))
    ));
}

#[test]
fn deep_nesting_is_refused() {
    let depth = 2_000;
    let body = format!(
        "<mbmsRegister>{}{}</mbmsRegister>",
        "<serviceId>".repeat(depth),
        "</serviceId>".repeat(depth)
    );
    assert!(body.len() < MAX_BODY_LEN);
    assert!(matches!(
        RegisterRequest::parse(body.as_bytes()),
        Err(XmlError::TooDeep(_))
    ));
}

#[test]
fn ten_thousand_items_are_refused() {
    let body = format!(
        "<mbmsMskRequest>{}</mbmsMskRequest>",
        "<msk keyDomainId=\"00f110\" mskId=\"00010000\"/>".repeat(10_000)
    );
    assert!(body.len() > MAX_BODY_LEN);
    assert!(matches!(
        MskRequest::parse(body.as_bytes()),
        Err(XmlError::TooLarge { .. })
    ));
    // Under the size bound, the item bound still holds.
    let body = format!(
        "<mbmsRegister>{}</mbmsRegister>",
        "<serviceId/>".repeat(MAX_ITEMS + 1)
    );
    assert!(body.len() < MAX_BODY_LEN);
    assert_eq!(
        RegisterRequest::parse(body.as_bytes()),
        Err(XmlError::TooManyItems { max: MAX_ITEMS })
    );
    let body = format!(
        "<mbmsRegister>{}</mbmsRegister>",
        "<serviceId>u</serviceId>".repeat(MAX_ITEMS)
    );
    assert_eq!(
        RegisterRequest::parse(body.as_bytes()).map(|r| r.service_ids.len()),
        Ok(MAX_ITEMS)
    );
}

#[test]
fn long_values_are_refused() {
    let long = "a".repeat(MAX_VALUE_LEN + 1);
    let text = format!("<mbmsRegister><serviceId>{long}</serviceId></mbmsRegister>");
    assert!(matches!(
        RegisterRequest::parse(text.as_bytes()),
        Err(XmlError::ValueTooLong { .. })
    ));
    // Split over many references, the text bound is still enforced.
    let refs = format!(
        "<mbmsRegister><serviceId>{}</serviceId></mbmsRegister>",
        "&amp;".repeat(2000)
    );
    assert!(matches!(
        RegisterRequest::parse(refs.as_bytes()),
        Err(XmlError::ValueTooLong { .. })
    ));
    let attr =
        format!("<mbmsMskRequest><msk keyDomainId=\"{long}\" mskId=\"1\"/></mbmsMskRequest>");
    assert!(matches!(
        MskRequest::parse(attr.as_bytes()),
        Err(XmlError::ValueTooLong { .. })
    ));
    let ok = "a".repeat(MAX_VALUE_LEN);
    let text = format!("<mbmsRegister><serviceId>{ok}</serviceId></mbmsRegister>");
    assert!(RegisterRequest::parse(text.as_bytes()).is_ok());
}

#[test]
fn invalid_utf8_and_other_encodings_are_refused() {
    assert_eq!(
        RegisterRequest::parse(b"<mbmsRegister><serviceId>\xff</serviceId></mbmsRegister>"),
        Err(XmlError::NotUtf8 { offset: 25 })
    );
    assert_eq!(
        RegisterRequest::parse(
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><mbmsRegister><serviceId>x</serviceId></mbmsRegister>"
        ),
        Err(XmlError::Encoding("ISO-8859-1".into()))
    );
    // UTF-16 with its BOM is not UTF-8.
    assert!(matches!(
        RegisterRequest::parse(b"\xff\xfe<\0m\0"),
        Err(XmlError::NotUtf8 { .. })
    ));
}

#[test]
fn truncated_xml_is_refused() {
    let full = RegisterRequest::register(&ids(&["urn:example:mbms:news"])).to_xml();
    for cut in 0..full.len() - 1 {
        let r = RegisterRequest::parse(&full.as_bytes()[..cut]);
        assert!(r.is_err(), "prefix of {cut} octets parsed: {r:?}");
    }
    assert_eq!(RegisterRequest::parse(b""), Err(XmlError::Truncated));
    assert_eq!(
        RegisterRequest::parse(b"<mbmsRegister><serviceId>x</serviceId>"),
        Err(XmlError::Truncated)
    );
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz over mutations of a valid body.
    let base = MskRequest::new(&[(kd(), MskId::new(1, 0))])
        .to_xml()
        .into_bytes();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..20_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut b = base.clone();
        let pos = (seed as usize) % b.len();
        b[pos] = (seed >> 32) as u8;
        if seed & 1 == 0 {
            b.truncate((seed >> 40) as usize % b.len());
        }
        let _ = MskRequest::parse(&b);
        let _ = MskResponse::parse(&b);
        let _ = RegisterRequest::parse(&b);
    }
}

#[test]
fn service_ids_are_checked_before_sending() {
    assert!(check_service_id("urn:example:mbms:news").is_ok());
    assert!(check_service_id("").is_err());
    assert!(check_service_id(" urn:x").is_err());
    assert!(check_service_id("urn:\u{0}x").is_err());
    assert!(check_service_id(&"a".repeat(MAX_VALUE_LEN + 1)).is_err());
}

#[test]
fn errors_do_not_echo_long_input() {
    let name = "x".repeat(1000);
    let body = format!("<{name}/>");
    let err = RegisterRequest::parse(body.as_bytes()).expect_err("unknown root");
    assert!(err.to_string().len() < 300, "{err}");
}

#[test]
fn characters_outside_xml_are_refused() {
    for body in [
        "<mbmsRegister><serviceId>a\u{1}b</serviceId></mbmsRegister>",
        "<mbmsRegister><serviceId>a&#1;b</serviceId></mbmsRegister>",
        "<mbmsRegister><serviceId>a&#xFFFE;b</serviceId></mbmsRegister>",
        "<mbmsMskRequest><msk keyDomainId=\"&#x1f;\" mskId=\"00010000\"/></mbmsMskRequest>",
    ] {
        assert!(
            matches!(
                RegisterRequest::parse(body.as_bytes())
                    .map(|_| ())
                    .or_else(|e| match e {
                        XmlError::UnknownRoot { .. } =>
                            MskRequest::parse(body.as_bytes()).map(|_| ()),
                        other => Err(other),
                    }),
                Err(XmlError::Syntax { .. })
            ),
            "{body:?}"
        );
    }
    assert_eq!(
        RegisterRequest::parse(b"<mbmsRegister><serviceId>a&#x9;b</serviceId></mbmsRegister>")
            .map(|r| r.service_ids),
        Ok(vec!["a\tb".to_owned()])
    );
}
