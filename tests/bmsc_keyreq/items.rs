//! Registration, deregistration and MSK request: one status per item (TS 33.246 6.3.2.4),
//! durable store changes, events.

use super::*;

#[test]
fn registration_answers_each_service_and_stores_the_accepted_ones() {
    let b = bench();
    let body = format!(
        "<mbmsRegister xmlns=\"urn:mbms-keys:keymanagement:1\"><serviceId>{OPEN}</serviceId>\
         <serviceId>{VIP}</serviceId><serviceId>urn:example:nope</serviceId><serviceId> </serviceId>\
         <serviceId>{OPEN2}</serviceId></mbmsRegister>"
    );
    let x = b.alice(PATH_REGISTER, MIME_REGISTER, &body);
    assert_eq!(
        x.register_codes(),
        vec![
            (OPEN.to_owned(), 200),
            (VIP.to_owned(), 403),
            ("urn:example:nope".to_owned(), 404),
            (String::new(), 400),
            (OPEN2.to_owned(), 200),
        ]
    );
    assert_eq!(
        x.events,
        vec![KeyRequestEvent::Registered {
            btid: ALICE.parse().expect("btid"),
            ue_addr: PEER,
            service_ids: vec![OPEN.to_owned(), OPEN2.to_owned()],
        }]
    );
    let regs = b
        .store
        .registrations_of_btid(&ALICE.parse().expect("btid"))
        .expect("read");
    assert_eq!(regs.len(), 2);
    assert!(
        regs.iter()
            .all(|r| r.ue_addr == PEER && r.registered_at == t0())
    );
    assert!(!is_registered(&b.store.inner, ALICE, VIP));
    assert_eq!(b.metrics.registrations_accepted.get(), 2);
}

#[test]
fn a_restricted_service_accepts_an_impi_matching_its_patterns() {
    let b = bench();
    let x = b.post(
        VERA,
        0x20,
        PATH_REGISTER,
        MIME_REGISTER,
        &register_body(&[VIP, OPEN]),
    );
    assert_eq!(
        x.register_codes(),
        vec![(VIP.to_owned(), 200), (OPEN.to_owned(), 200)]
    );
    assert!(is_registered(&b.store.inner, VERA, VIP));
    assert!(!ALICE_IMPI.starts_with("vip-"));
}

#[test]
fn a_registration_the_store_cannot_keep_is_500_for_that_item_and_not_reported() {
    let b = bench();
    b.store.fail_writes.store(true, Ordering::SeqCst);
    let x = b.alice(
        PATH_REGISTER,
        MIME_REGISTER,
        &register_body(&[OPEN, VIP, "urn:x"]),
    );
    assert_eq!(
        x.register_codes(),
        vec![
            (OPEN.to_owned(), 500),
            (VIP.to_owned(), 403),
            ("urn:x".to_owned(), 404)
        ]
    );
    assert!(x.events.is_empty());
    assert_eq!(x.rspauth(), RspauthStatus::Verified);
}

#[test]
fn registering_twice_refreshes_and_reports_each_service_once() {
    let b = bench();
    let x = b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN, OPEN]));
    assert_eq!(x.register_codes().len(), 2);
    match &x.events[..] {
        [KeyRequestEvent::Registered { service_ids, .. }] => assert_eq!(service_ids, &[OPEN]),
        other => panic!("{other:?}"),
    }
    let y = b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN]));
    assert_eq!(y.register_codes(), vec![(OPEN.to_owned(), 200)]);
    assert_eq!(y.events.len(), 1, "a refresh pushes the MSK again");
}

// ---- deregistration -------------------------------------------------------------------------

#[test]
fn deregistration_removes_durably_reports_the_remaining_and_is_idempotent() {
    let b = bench();
    b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN, OPEN2]));
    let x = b.alice(
        PATH_DEREGISTER,
        MIME_DEREGISTER,
        &deregister_body(&[OPEN, "urn:example:nope"]),
    );
    assert_eq!(
        x.register_codes(),
        vec![(OPEN.to_owned(), 200), ("urn:example:nope".to_owned(), 404)]
    );
    assert_eq!(
        x.events,
        vec![KeyRequestEvent::Deregistered {
            btid: ALICE.parse().expect("btid"),
            ue_addr: PEER,
            removed: vec![OPEN.to_owned()],
            remaining: vec![OPEN2.to_owned()],
        }]
    );
    assert!(!is_registered(&b.store.inner, ALICE, OPEN));
    // Again: still 200 (the state asked for holds), nothing removed, nothing reported.
    let y = b.alice(PATH_DEREGISTER, MIME_DEREGISTER, &deregister_body(&[OPEN]));
    assert_eq!(y.register_codes(), vec![(OPEN.to_owned(), 200)]);
    assert!(y.events.is_empty());
    assert_eq!(b.metrics.deregistrations.get(), 2);
}

#[test]
fn a_deregistration_the_store_cannot_do_is_500() {
    let b = bench();
    b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN]));
    b.store.fail_writes.store(true, Ordering::SeqCst);
    let x = b.alice(PATH_DEREGISTER, MIME_DEREGISTER, &deregister_body(&[OPEN]));
    assert_eq!(x.register_codes(), vec![(OPEN.to_owned(), 500)]);
    assert!(x.events.is_empty());
    b.store.fail_writes.store(false, Ordering::SeqCst);
    assert!(is_registered(&b.store.inner, ALICE, OPEN));
}

// ---- MSK request ----------------------------------------------------------------------------

fn msk_body(items: &[(KeyDomainId, MskId)]) -> String {
    MskRequest::new(items).to_xml()
}

#[test]
fn an_msk_request_needs_a_registration_to_a_service_of_that_key_group() {
    let b = bench();
    b.store
        .put_msk(&msk_record(1, 7, MskState::Current))
        .expect("put");
    let body = msk_body(&[(KD, MskId::new(1, 7))]);
    let x = b.alice(PATH_MSK, MIME_MSK, &body);
    assert_eq!(x.msk_codes(), vec![403], "not registered");
    assert!(x.events.is_empty());
    b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN2]));
    let y = b.alice(PATH_MSK, MIME_MSK, &body);
    assert_eq!(y.msk_codes(), vec![200], "OPEN2 shares Key Group 1");
    let other_domain = msk_body(&[(KeyDomainId([0x00, 0xf1, 0x20]), MskId::new(1, 7))]);
    assert_eq!(
        b.alice(PATH_MSK, MIME_MSK, &other_domain).msk_codes(),
        vec![403]
    );
}

#[test]
fn an_msk_request_answers_each_item() {
    let b = bench();
    b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN]));
    for (n, state) in [
        (4, MskState::Retired),
        (5, MskState::Current),
        (6, MskState::Next),
    ] {
        b.store.put_msk(&msk_record(1, n, state)).expect("put");
    }
    let body = "<mbmsMskRequest xmlns=\"urn:mbms-keys:keymanagement:1\">\
        <msk keyDomainId=\"00f110\" mskId=\"00010000\"/>\
        <msk keyDomainId=\"00f110\" mskId=\"00010006\"/>\
        <msk keyDomainId=\"00f110\" mskId=\"00010009\"/>\
        <msk keyDomainId=\"00f110\" mskId=\"00010004\"/>\
        <msk keyDomainId=\"00f11\" mskId=\"00010005\"/>\
        <msk keyDomainId=\"00f110\" mskId=\"00020005\"/>\
        </mbmsMskRequest>";
    let x = b.alice(PATH_MSK, MIME_MSK, body);
    assert_eq!(x.msk_codes(), vec![200, 200, 404, 404, 400, 403]);
    assert_eq!(
        x.events,
        vec![KeyRequestEvent::MskRequested {
            btid: ALICE.parse().expect("btid"),
            ue_addr: PEER,
            msks: vec![(KD, MskId::new(1, 0)), (KD, MskId::new(1, 6))],
        }],
        "Key Number 0 kept: resolved by the Key Distribution function"
    );
    let parsed = MskResponse::parse(&x.resp.body).expect("parses");
    assert!(matches!(parsed.statuses[4].msk, MskRef::Malformed { .. }));
    assert_eq!(b.metrics.msk_requests.get(), 2);
}

#[test]
fn key_number_0_needs_a_current_msk() {
    let b = bench();
    b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN]));
    b.store
        .put_msk(&msk_record(1, 2, MskState::Next))
        .expect("put");
    let body = msk_body(&[(KD, MskId::new(1, 0))]);
    assert_eq!(b.alice(PATH_MSK, MIME_MSK, &body).msk_codes(), vec![404]);
    b.store
        .put_msk(&msk_record(1, 3, MskState::Current))
        .expect("put");
    assert_eq!(b.alice(PATH_MSK, MIME_MSK, &body).msk_codes(), vec![200]);
}

#[test]
fn an_msk_request_the_store_cannot_read_is_500() {
    let b = bench();
    b.alice(PATH_REGISTER, MIME_REGISTER, &register_body(&[OPEN]));
    b.store.fail_reads.store(true, Ordering::SeqCst);
    let x = b.alice(
        PATH_MSK,
        MIME_MSK,
        "<mbmsMskRequest><msk keyDomainId=\"00f110\" mskId=\"00010000\"/><msk keyDomainId=\"x\" mskId=\"y\"/></mbmsMskRequest>",
    );
    assert_eq!(x.msk_codes(), vec![500, 400]);
    assert!(x.events.is_empty());
}
