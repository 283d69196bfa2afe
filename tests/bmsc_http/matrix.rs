//! Bad input over the socket, and nonce expiry.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matrix_of_bad_input_is_answered_and_the_server_stays_up() {
    let mut s = start(config("auth-int", "SHA-256")).await;
    let a = s.addr;
    let alice = credentials(ALICE, 0x10);
    let reg = register_body(&[OPEN]);
    let reg = reg.as_bytes();
    let ct = [("content-type", MIME_REGISTER)];

    // 1–3: method and path.
    let r = raw(a, &request_bytes("GET", PATH_REGISTER, &[], b"")).await;
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = raw(a, &request_bytes("DELETE", PATH_MSK, &[], b"")).await;
    assert_eq!(r.status, 405);
    assert_eq!(post(a, "/keymanagement/nope", &ct, reg).await.status, 404);

    // 4: 100 KiB declared, 1 KiB sent: 413 at once, the rest never read.
    let t = Instant::now();
    let mut conn = TcpStream::connect(a).await.expect("connect");
    let mut head = request_bytes("POST", PATH_REGISTER, &ct, b"");
    head.truncate(head.len() - b"content-length: 0\r\n\r\n".len());
    head.extend_from_slice(b"content-length: 102400\r\n\r\n");
    head.extend_from_slice(&[b'<'; 1024]);
    conn.write_all(&head).await.expect("write");
    let r = read_response(&mut conn).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "before the request timeout"
    );
    assert!(closed_within(&mut conn, Duration::from_secs(2)).await);

    // 5: chunked, over the limit while reading.
    let mut conn = TcpStream::connect(a).await.expect("connect");
    let mut req = request_bytes(
        "POST",
        PATH_REGISTER,
        &[
            ("content-type", MIME_REGISTER),
            ("transfer-encoding", "chunked"),
        ],
        b"",
    );
    for _ in 0..6 {
        req.extend_from_slice(b"400\r\n");
        req.extend_from_slice(&[b'a'; 0x400]);
        req.extend_from_slice(b"\r\n");
    }
    conn.write_all(&req).await.expect("write");
    let r = read_response(&mut conn).await;
    assert_eq!(r.status, 413);

    // 6: Expect: 100-continue with a body over the limit: 413, no 100 first.
    let mut conn = TcpStream::connect(a).await.expect("connect");
    let mut head = request_bytes("POST", PATH_REGISTER, &[("expect", "100-continue")], b"");
    head.truncate(head.len() - b"content-length: 0\r\n\r\n".len());
    head.extend_from_slice(b"content-length: 102400\r\n\r\n");
    conn.write_all(&head).await.expect("write");
    let r = read_response(&mut conn).await;
    assert_eq!((r.status, r.continued), (413, false));

    // 7: no Authorization.
    let r = post(a, PATH_REGISTER, &ct, reg).await;
    assert_eq!(r.challenge().realm(), REALM);

    // 8–10: wrong password, unknown B-TID, expired B-TID.
    for (btid, seed) in [
        (ALICE, 0x11),
        ("bm9ib2R5bm9ib2R5bm9ib2R5@bsf.example.org", 0x10),
        (OLD, 0x30),
    ] {
        let mut sess = session(a, PATH_REGISTER).await;
        let (r, _) = authed(
            a,
            &mut sess,
            &credentials(btid, seed),
            PATH_REGISTER,
            MIME_REGISTER,
            reg,
        )
        .await;
        assert_eq!(r.status, 401, "{btid}");
        assert!(!r.challenge().stale(), "{btid}: a fresh challenge");
    }

    // 11: wrong Content-Type (authenticated).
    let mut sess = session(a, PATH_REGISTER).await;
    let (r, _) = authed(a, &mut sess, &alice, PATH_REGISTER, "application/xml", reg).await;
    assert_eq!(r.status, 415);

    // 12: malformed XML (authenticated).
    let (r, _) = authed(
        a,
        &mut sess,
        &alice,
        PATH_REGISTER,
        MIME_REGISTER,
        b"<mbmsRegister><serviceId>",
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain"))
    );
    assert!(r.header("authentication-info").is_some());

    // 13: replayed (nonce, nc).
    let auth = sess
        .authorize(&alice, "POST", PATH_REGISTER, reg)
        .expect("authorize");
    let replay = request_bytes(
        "POST",
        PATH_REGISTER,
        &[
            ("content-type", MIME_REGISTER),
            ("authorization", auth.header_value()),
        ],
        reg,
    );
    assert_eq!(raw(a, &replay).await.status, 200);
    s.next_event().await;
    let r = raw(a, &replay).await;
    assert_eq!(r.status, 401);
    assert!(!r.challenge().stale());

    // 14: an Authorization that is not UTF-8.
    let mut bad = b"POST /keymanagement/register HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nauthorization: Digest username=\"\xff\xfe\"\r\n\r\n".to_vec();
    assert_eq!(raw(a, &bad).await.status, 401);
    bad.clear();

    // 15: not HTTP.
    let r = raw(a, b"HELLO THERE\r\n\r\n").await;
    assert_eq!(r.status, 400);

    // 16: an oversized header.
    let big = "x".repeat(20 * 1024);
    let mut conn = TcpStream::connect(a).await.expect("connect");
    let _ = conn
        .write_all(&request_bytes(
            "POST",
            PATH_REGISTER,
            &[("x-big", &big)],
            b"",
        ))
        .await;
    let mut b = Vec::new();
    let _ = timeout(IO_LIMIT, conn.read_to_end(&mut b)).await;
    let text = String::from_utf8_lossy(&b);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text}"
    );

    // 17: a body that never completes: 408 after request_timeout (1 s).
    let t = Instant::now();
    let mut conn = TcpStream::connect(a).await.expect("connect");
    let mut head = request_bytes("POST", PATH_REGISTER, &ct, b"");
    head.truncate(head.len() - b"content-length: 0\r\n\r\n".len());
    head.extend_from_slice(b"content-length: 100\r\n\r\n<mbms");
    conn.write_all(&head).await.expect("write");
    let r = read_response(&mut conn).await;
    assert_eq!(r.status, 408);
    assert!(t.elapsed() >= Duration::from_millis(900) && t.elapsed() < Duration::from_secs(3));

    // 18: slowloris: a header dripped in is cut after request_timeout, while a valid request
    // is served right away.
    let t = Instant::now();
    let mut slow = TcpStream::connect(a).await.expect("connect");
    slow.write_all(b"POST /keymanagement/register HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    let dripper = tokio::spawn(async move {
        for _ in 0..20 {
            sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"x").await.is_err() {
                break;
            }
        }
        slow
    });
    let quick = Instant::now();
    let r = post(a, PATH_MSK, &[], b"").await;
    assert_eq!(r.status, 401);
    assert!(
        quick.elapsed() < Duration::from_millis(500),
        "served alongside"
    );
    let mut slow = dripper.await.expect("dripper");
    assert!(closed_within(&mut slow, Duration::from_secs(1)).await);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "cut by the header timeout"
    );

    // Still up: a whole exchange with our client.
    let r = client(&s, alice_keys())
        .register(&ids(&[OPEN2]))
        .await
        .expect("register after the matrix");
    assert_eq!(codes(&r), vec![(OPEN2.into(), 200)]);
    s.next_event().await;
    s.no_event();
    for (status, at_least) in [(400, 1), (401, 5), (404, 1), (405, 2), (413, 3), (415, 1)] {
        assert!(
            s.metrics.http_status_count(status) >= at_least,
            "{status}: {}",
            s.metrics.render()
        );
    }
    assert!(s.metrics.digest_failures.get() >= 5);
    assert!(s.metrics.http_latency.count() > 10);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_nonce_gets_401_stale_true_over_the_socket() {
    let mut s = start(lab::config("auth-int", "SHA-256", "1s", 100)).await;
    let reg = register_body(&[OPEN]);
    let mut sess = session(s.addr, PATH_REGISTER).await;
    sleep(Duration::from_millis(1100)).await;
    let alice = credentials(ALICE, 0x10);
    let (r, _) = authed(
        s.addr,
        &mut sess,
        &alice,
        PATH_REGISTER,
        MIME_REGISTER,
        reg.as_bytes(),
    )
    .await;
    let fresh = r.challenge();
    assert!(fresh.stale());
    let mut sess = ClientSession::new(fresh);
    let (r, auth) = authed(
        s.addr,
        &mut sess,
        &alice,
        PATH_REGISTER,
        MIME_REGISTER,
        reg.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        auth.check_authentication_info(&alice, r.header("authentication-info"), &r.body),
        RspauthStatus::Verified
    );
    s.next_event().await;
    // Our client follows stale=true by itself.
    let ue = client(&s, alice_keys());
    ue.register(&ids(&[OPEN])).await.expect("first");
    sleep(Duration::from_millis(1100)).await;
    ue.register(&ids(&[OPEN]))
        .await
        .expect("after the nonce expired");
    s.stop().await;
}
