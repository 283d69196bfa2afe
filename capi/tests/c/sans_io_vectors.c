/* The sans-IO level of the C API against the project's MIKEY vectors (proto-vectors/): the same
 * acceptances and rejections as the Rust receiver tests (tests/ue_receiver_rules.rs).
 * Usage: sans_io_vectors PROTO_VECTORS_DIR */
#include "check.h"

static const char *dir;
static uint8_t *ks_naf;
static size_t ks_naf_len;
static char *fqdn;
static char *btid;

static uint8_t *vec(const char *name, size_t *len) {
    return vector_field(dir, name, "message", 0, len);
}

static mbms_receiver *receiver(void) {
    mbms_receiver *r = NULL;
    CHECK_RC(mbms_receiver_new(fqdn, btid, ks_naf, ks_naf_len, &r), MBMS_OK);
    return r;
}

/* Feeds a datagram; returns the acknowledgement length. */
static size_t feed(mbms_receiver *r, uint64_t now, const uint8_t *d, size_t len, uint8_t *ack) {
    size_t ack_len = 12345;
    CHECK_RC(mbms_receiver_handle_datagram(r, now, d, len, ack, MBMS_ACK_MAX_LEN, &ack_len),
             MBMS_OK);
    return ack_len;
}

static size_t feed_vec(mbms_receiver *r, const char *name, uint8_t *ack) {
    size_t len;
    uint8_t *d = vec(name, &len);
    size_t n = feed(r, 1000, d, len, ack);
    free(d);
    return n;
}

/* The next event, which must exist. */
static mbms_event next(mbms_receiver *r) {
    mbms_event ev;
    memset(&ev, 0xee, sizeof ev);
    CHECK_RC(mbms_receiver_poll_event(r, &ev), MBMS_OK);
    return ev;
}

static void no_more_events(mbms_receiver *r) {
    mbms_event ev;
    mbms_result rc = mbms_receiver_poll_event(r, &ev);
    CHECK(rc == MBMS_ERR_NOT_FOUND);
    if (rc == MBMS_OK) {
        fprintf(stderr, "  unexpected event of kind %u (discard reason %s)\n", ev.kind,
                mbms_discard_reason_name(ev.discard_reason));
    }
}

static void expect_discard(mbms_receiver *r, const char *reason) {
    mbms_event ev = next(r);
    CHECK(ev.kind == MBMS_EVENT_DISCARDED);
    CHECK(strcmp(mbms_discard_reason_name(ev.discard_reason), reason) == 0);
    if (ev.kind == MBMS_EVENT_DISCARDED && strcmp(mbms_discard_reason_name(ev.discard_reason), reason) != 0) {
        fprintf(stderr, "  discard reason %s, expected %s\n",
                mbms_discard_reason_name(ev.discard_reason), reason);
    }
}

static const uint32_t KD = 0x00f110;
static const uint32_t MSK_ID = 0x00010002;

static void msk_accepted_with_the_ack_vector(void) {
    mbms_receiver *r = receiver();
    uint8_t ack[MBMS_ACK_MAX_LEN];
    size_t ack_len = feed_vec(r, "msk-message-normal", ack);
    size_t want_len;
    uint8_t *want = vec("msk-ack", &want_len);
    CHECK(ack_len == want_len && memcmp(ack, want, want_len) == 0);
    free(want);
    mbms_event ev = next(r);
    CHECK(ev.kind == MBMS_EVENT_MSK_INSTALLED);
    CHECK(ev.key_domain_id == KD && ev.msk_id == MSK_ID);
    CHECK(ev.seql == 1 && ev.sequ == 0xffff);
    no_more_events(r);
    /* The same message again is a replay: no acknowledgement. */
    CHECK(feed_vec(r, "msk-message-normal", ack) == 0);
    expect_discard(r, "replay");
    /* An acknowledgement sent to the UE. */
    CHECK(feed_vec(r, "msk-ack", ack) == 0);
    expect_discard(r, "unexpected_acknowledgement");
    no_more_events(r);
    mbms_receiver_free(r);
}

static void malformed_datagrams(void) {
    mbms_receiver *r = receiver();
    uint8_t ack[MBMS_ACK_MAX_LEN];
    size_t len;
    uint8_t *normal = vec("msk-message-normal", &len);
    uint8_t one = 0x01;
    uint8_t ff[40];
    memset(ff, 0xff, sizeof ff);
    CHECK(feed(r, 0, NULL, 0, ack) == 0);
    CHECK(feed(r, 0, &one, 1, ack) == 0);
    CHECK(feed(r, 0, normal, len - 1, ack) == 0);
    CHECK(feed(r, 0, ff, sizeof ff, ack) == 0);
    for (int i = 0; i < 4; i++) {
        expect_discard(r, "malformed");
    }
    no_more_events(r);
    /* A flipped MAC octet. */
    normal[len - 1] ^= 0x01;
    CHECK(feed(r, 0, normal, len, ack) == 0);
    expect_discard(r, "bad_mac");
    free(normal);
    mbms_receiver_free(r);
}

static void unknown_muk(void) {
    mbms_receiver *r = NULL;
    CHECK_RC(mbms_receiver_new(fqdn, "second-btid@bsf.mnc001.mcc001.pub.3gppnetwork.org", ks_naf,
                               ks_naf_len, &r),
             MBMS_OK);
    uint8_t ack[MBMS_ACK_MAX_LEN];
    CHECK(feed_vec(r, "msk-message-normal", ack) == 0);
    expect_discard(r, "unknown_muk");
    mbms_receiver_free(r);
}

static void check_key(const mbms_srtp_key *k, const char *vector, uint16_t mtk_id) {
    size_t mtk_len, salt_len = 0;
    uint8_t *mtk = vector_field(dir, vector, "mtk", 0, &mtk_len);
    CHECK(k->master_key_len == 16 && mtk_len == 16 && memcmp(k->master_key, mtk, 16) == 0);
    free(mtk);
    if (strcmp(vector, "mtk-message-streaming") == 0) {
        uint8_t *salt = vector_field(dir, vector, "mtk_salt", 0, &salt_len);
        CHECK(k->master_salt_len == 14 && memcmp(k->master_salt, salt, 14) == 0);
        free(salt);
    } else {
        CHECK(k->master_salt_len == 0);
    }
    uint8_t mki[6] = {0x00, 0x01, 0x00, 0x02, (uint8_t)(mtk_id >> 8), (uint8_t)mtk_id};
    CHECK(k->mki_len == 6 && memcmp(k->mki, mki, 6) == 0);
    CHECK(k->key_domain_id == KD && k->msk_id == MSK_ID && k->mtk_id == mtk_id);
}

static void mtks_and_msk_life(void) {
    mbms_receiver *r = receiver();
    uint8_t ack[MBMS_ACK_MAX_LEN];
    mbms_srtp_key key;
    feed_vec(r, "msk-message-normal", ack);
    next(r);
    /* Download MTK (no salt, no SRTP-ID map). */
    CHECK(feed_vec(r, "mtk-message-download", ack) == 0);
    mbms_event ev = next(r);
    CHECK(ev.kind == MBMS_EVENT_MTK_READY && ev.mtk_id == 3 && ev.ssrc_count == 0);
    CHECK(ev.key_domain_id == KD && ev.msk_id == MSK_ID);
    uint8_t mki3[6] = {0x00, 0x01, 0x00, 0x02, 0x00, 0x03};
    CHECK(memcmp(ev.mki, mki3, 6) == 0);
    CHECK_RC(mbms_receiver_key_by_mki(r, mki3, 6, &key), MBMS_OK);
    check_key(&key, "mtk-message-download", 3);
    CHECK(key.policy == 0 && key.ssrc == 0 && key.roc == 0);
    /* Streaming MTK with its SRTP-ID map (SSRC 0x11223344, ROC 0) and SP. */
    CHECK(feed_vec(r, "mtk-message-streaming", ack) == 0);
    ev = next(r);
    CHECK(ev.kind == MBMS_EVENT_MTK_READY && ev.mtk_id == 4 && ev.ssrc_count == 1);
    memset(&key, 0, sizeof key);
    CHECK_RC(mbms_receiver_key_by_ssrc(r, 0x11223344, &key), MBMS_OK);
    check_key(&key, "mtk-message-streaming", 4);
    CHECK(key.ssrc == 0x11223344 && key.roc == 0);
    CHECK(key.policy == MBMS_SRTP_AES_CM_128_HMAC_SHA1_80);
    CHECK_RC(mbms_receiver_key_by_ssrc(r, 0x11223345, &key), MBMS_ERR_NOT_FOUND);
    /* The same MTK message again: MTK ID not newer. */
    CHECK(feed_vec(r, "mtk-message-streaming", ack) == 0);
    expect_discard(r, "replay");
    /* Validity update (counter 6): SEQu 0x0100. */
    CHECK(feed_vec(r, "msk-message-validity-update", ack) > 0);
    ev = next(r);
    CHECK(ev.kind == MBMS_EVENT_MSK_UPDATED && ev.seql == 1 && ev.sequ == 0x0100);
    /* Invalidation (counter 7): the MSK and its MTKs go. */
    CHECK(feed_vec(r, "msk-message-invalidation", ack) > 0);
    ev = next(r);
    CHECK(ev.kind == MBMS_EVENT_MSK_INVALIDATED && ev.msk_id == MSK_ID);
    CHECK_RC(mbms_receiver_key_by_mki(r, mki3, 6, &key), MBMS_ERR_NOT_FOUND);
    CHECK_RC(mbms_receiver_key_by_ssrc(r, 0x11223344, &key), MBMS_ERR_NOT_FOUND);
    CHECK(feed_vec(r, "mtk-message-download", ack) == 0);
    expect_discard(r, "unknown_msk");
    /* A missed key of a Key Group the UE knows: the receiver asks for that MSK. */
    ev = next(r);
    CHECK(ev.kind == MBMS_EVENT_MSK_REQUEST_NEEDED && ev.msk_id == MSK_ID);
    no_more_events(r);
    memset(&key, 0, sizeof key);
    mbms_receiver_free(r);
}

static void solicited_pull_and_refusal(void) {
    mbms_receiver *r = receiver();
    uint8_t ack[MBMS_ACK_MAX_LEN];
    uint64_t at;
    CHECK(feed_vec(r, "msk-message-solicited-pull", ack) == 0);
    mbms_event ev = next(r);
    CHECK(ev.kind == MBMS_EVENT_MSK_REQUEST_NEEDED && ev.key_domain_id == KD &&
          ev.msk_id == 0x00010000);
    no_more_events(r);
    CHECK_RC(mbms_receiver_next_timeout(r, &at), MBMS_ERR_NOT_FOUND);
    CHECK_RC(mbms_receiver_handle_timeout(r, 2000), MBMS_OK);
    no_more_events(r);
    CHECK_RC(mbms_receiver_msk_response(r, KD, 0x00010000, 200), MBMS_OK);
    no_more_events(r);
    CHECK_RC(mbms_receiver_msk_response(r, KD, 0x00010000, 404), MBMS_OK);
    ev = next(r);
    CHECK(ev.kind == MBMS_EVENT_MSK_REQUEST_FAILED && ev.code == 404 && ev.msk_id == 0x00010000);
    mbms_receiver_free(r);
}

static void state_survives_a_restart(void) {
    mbms_receiver *r = receiver();
    uint8_t ack[MBMS_ACK_MAX_LEN];
    uint8_t state_key[32];
    for (int i = 0; i < 32; i++) state_key[i] = (uint8_t)(0xa0 + i);
    feed_vec(r, "msk-message-normal", ack);
    size_t need = 0;
    CHECK_RC(mbms_receiver_save(r, state_key, 32, NULL, 0, &need), MBMS_ERR_BUFFER_TOO_SMALL);
    CHECK(need > 0);
    uint8_t *blob = malloc(need);
    size_t blob_len = 0;
    CHECK_RC(mbms_receiver_save(r, state_key, 32, blob, need, &blob_len), MBMS_OK);
    CHECK(blob_len == need);
    mbms_receiver_free(r);
    mbms_receiver *s = NULL;
    CHECK_RC(mbms_receiver_restore(fqdn, btid, ks_naf, ks_naf_len, state_key, 32, blob, blob_len,
                                   &s),
             MBMS_OK);
    /* The counter came along: the same message is a replay; the MSK came along: its MTK is
     * accepted; the next MSK message (counter 6) is newer. */
    CHECK(feed_vec(s, "msk-message-normal", ack) == 0);
    expect_discard(s, "replay");
    CHECK(feed_vec(s, "mtk-message-download", ack) == 0);
    mbms_event ev = next(s);
    CHECK(ev.kind == MBMS_EVENT_MTK_READY && ev.mtk_id == 3);
    CHECK(feed_vec(s, "msk-message-validity-update", ack) > 0);
    mbms_receiver_free(s);
    free(blob);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PROTO_VECTORS_DIR\n", argv[0]);
        return 2;
    }
    dir = argv[1];
    size_t n;
    ks_naf = vector_field(dir, "msk-message-normal", "muk", 0, &ks_naf_len);
    fqdn = (char *)vector_field(dir, "msk-message-normal", "idi", 1, &n);
    btid = (char *)vector_field(dir, "msk-message-normal", "idr", 1, &n);
    CHECK(ks_naf_len == MBMS_KEY_LEN);

    msk_accepted_with_the_ack_vector();
    malformed_datagrams();
    unknown_muk();
    mtks_and_msk_life();
    solicited_pull_and_refusal();
    state_survives_a_restart();

    memset(ks_naf, 0, ks_naf_len);
    free(ks_naf);
    free(fqdn);
    free(btid);
    return report("sans_io_vectors");
}
