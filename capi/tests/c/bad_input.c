/* Bad input through the C API (docs/c-api.md, "Bad input"): NULL pointers, wrong lengths,
 * malformed strings, short buffers, a state blob from another key, garbage datagrams, double
 * free of NULL. Each gets its documented code; none crashes.
 * Usage: bad_input */
#include "check.h"

static const char *FQDN = "bmsc.mnc001.mcc001.pub.3gppnetwork.org";
static const char *BTID = "ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org";
static uint8_t KS[32];

static void names(void) {
    static const char *want[] = {"MBMS_OK", "MBMS_ERR_NULL", "MBMS_ERR_INVALID",
                                 "MBMS_ERR_BUFFER_TOO_SMALL", "MBMS_ERR_STATE",
                                 "MBMS_ERR_NOT_FOUND", "MBMS_ERR_PANIC", "MBMS_ERR_IO",
                                 "MBMS_ERR_REFUSED", "MBMS_ERR_KEYS"};
    for (mbms_result r = 0; r < 10; r++) {
        CHECK(strcmp(mbms_result_name(r), want[r]) == 0);
    }
    CHECK(strcmp(mbms_result_name(10), "MBMS_ERR_UNKNOWN") == 0);
    CHECK(strcmp(mbms_result_name(0xffffffffu), "MBMS_ERR_UNKNOWN") == 0);
    CHECK(mbms_version() != NULL && strlen(mbms_version()) > 0);
    CHECK(strcmp(mbms_discard_reason_name(0), "unknown") == 0);
    CHECK(strcmp(mbms_discard_reason_name(1), "malformed") == 0);
    CHECK(strcmp(mbms_discard_reason_name(1000), "unknown") == 0);
}

static void creation(void) {
    mbms_receiver *sentinel = (mbms_receiver *)(uintptr_t)0x1;
    mbms_receiver *r = sentinel;
    /* NULL pointers. */
    CHECK_RC(mbms_receiver_new(NULL, BTID, KS, 32, &r), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_new(FQDN, NULL, KS, 32, &r), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_new(FQDN, BTID, NULL, 32, &r), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_new(FQDN, BTID, KS, 32, NULL), MBMS_ERR_NULL);
    /* Wrong lengths and malformed strings. */
    CHECK_RC(mbms_receiver_new(FQDN, BTID, KS, 31, &r), MBMS_ERR_INVALID);
    CHECK_RC(mbms_receiver_new(FQDN, BTID, KS, 33, &r), MBMS_ERR_INVALID);
    CHECK_RC(mbms_receiver_new(FQDN, BTID, KS, 0, &r), MBMS_ERR_INVALID);
    CHECK_RC(mbms_receiver_new("", BTID, KS, 32, &r), MBMS_ERR_INVALID);
    CHECK_RC(mbms_receiver_new("\xff\xfe", BTID, KS, 32, &r), MBMS_ERR_INVALID);
    CHECK_RC(mbms_receiver_new(FQDN, "no-at-sign", KS, 32, &r), MBMS_ERR_INVALID);
    CHECK_RC(mbms_receiver_new(FQDN, "with space@bsf", KS, 32, &r), MBMS_ERR_INVALID);
    char long_name[300];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    CHECK_RC(mbms_receiver_new(long_name, BTID, KS, 32, &r), MBMS_ERR_INVALID);
    CHECK(r == sentinel); /* never written on error */
    CHECK_RC(mbms_receiver_new(FQDN, BTID, KS, 32, &r), MBMS_OK);
    CHECK(r != sentinel && r != NULL);
    mbms_receiver_free(r);
    /* Freeing NULL, twice, is a no-op. */
    mbms_receiver_free(NULL);
    mbms_receiver_free(NULL);
    CHECK(1);
}

static void calls_on_null_handles(void) {
    uint8_t buf[MBMS_ACK_MAX_LEN];
    size_t len;
    mbms_event ev;
    mbms_srtp_key key;
    uint64_t at;
    uint8_t mki[6] = {0};
    CHECK_RC(mbms_receiver_save(NULL, KS, 32, buf, sizeof buf, &len), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_handle_datagram(NULL, 0, buf, 1, buf, sizeof buf, &len),
             MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_poll_event(NULL, &ev), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_next_timeout(NULL, &at), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_handle_timeout(NULL, 0), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_msk_response(NULL, 1, 1, 404), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_key_by_mki(NULL, mki, 6, &key), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_key_by_ssrc(NULL, 1, &key), MBMS_ERR_NULL);
}

static void calls_with_bad_arguments(void) {
    mbms_receiver *r = NULL;
    CHECK_RC(mbms_receiver_new(FQDN, BTID, KS, 32, &r), MBMS_OK);
    uint8_t buf[MBMS_ACK_MAX_LEN];
    uint8_t d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t len = 0;
    mbms_srtp_key key;
    uint8_t mki[6] = {0, 1, 0, 2, 0, 3};
    /* handle_datagram: NULL datagram with a length, NULL ack buffers, short ack buffer. */
    CHECK_RC(mbms_receiver_handle_datagram(r, 0, NULL, 8, buf, sizeof buf, &len), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_handle_datagram(r, 0, d, 8, NULL, sizeof buf, &len), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_handle_datagram(r, 0, d, 8, buf, sizeof buf, NULL), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_handle_datagram(r, 0, d, 8, buf, 100, &len),
             MBMS_ERR_BUFFER_TOO_SMALL);
    CHECK(len == MBMS_ACK_MAX_LEN);
    /* None of those looked at the datagram: no event. */
    mbms_event ev;
    CHECK_RC(mbms_receiver_poll_event(r, &ev), MBMS_ERR_NOT_FOUND);
    CHECK_RC(mbms_receiver_poll_event(r, NULL), MBMS_ERR_NULL);
    /* Lookups and timers. */
    CHECK_RC(mbms_receiver_key_by_mki(r, NULL, 6, &key), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_key_by_mki(r, mki, 6, NULL), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_key_by_mki(r, mki, 5, &key), MBMS_ERR_INVALID);
    CHECK_RC(mbms_receiver_key_by_mki(r, mki, 7, &key), MBMS_ERR_INVALID);
    CHECK_RC(mbms_receiver_key_by_mki(r, mki, 6, &key), MBMS_ERR_NOT_FOUND);
    CHECK_RC(mbms_receiver_key_by_ssrc(r, 7, NULL), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_key_by_ssrc(r, 7, &key), MBMS_ERR_NOT_FOUND);
    CHECK_RC(mbms_receiver_next_timeout(r, NULL), MBMS_ERR_NULL);
    uint64_t at = 42;
    CHECK_RC(mbms_receiver_next_timeout(r, &at), MBMS_ERR_NOT_FOUND);
    CHECK(at == 42);
    CHECK_RC(mbms_receiver_msk_response(r, 0x01000000, 0x00010000, 404), MBMS_ERR_INVALID);
    /* save: NULL key, wrong key length, NULL out_len, short buffer with the size needed. */
    CHECK_RC(mbms_receiver_save(r, NULL, 32, buf, sizeof buf, &len), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_save(r, KS, 16, buf, sizeof buf, &len), MBMS_ERR_INVALID);
    CHECK_RC(mbms_receiver_save(r, KS, 32, buf, sizeof buf, NULL), MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_save(r, KS, 32, NULL, 10, &len), MBMS_ERR_NULL);
    memset(buf, 0x5a, sizeof buf);
    len = 0;
    CHECK_RC(mbms_receiver_save(r, KS, 32, buf, 1, &len), MBMS_ERR_BUFFER_TOO_SMALL);
    CHECK(len > 1 && len <= sizeof buf);
    CHECK(buf[0] == 0x5a); /* nothing written */
    size_t need = len;
    CHECK_RC(mbms_receiver_save(r, KS, 32, buf, need, &len), MBMS_OK);
    CHECK(len == need);
    mbms_receiver_free(r);
}

static void state_blobs(void) {
    mbms_receiver *r = NULL;
    CHECK_RC(mbms_receiver_new(FQDN, BTID, KS, 32, &r), MBMS_OK);
    uint8_t key_a[32], key_b[32];
    memset(key_a, 0xaa, sizeof key_a);
    memset(key_b, 0xbb, sizeof key_b);
    uint8_t blob[4096];
    size_t blob_len = 0;
    CHECK_RC(mbms_receiver_save(r, key_a, 32, blob, sizeof blob, &blob_len), MBMS_OK);
    mbms_receiver_free(r);
    mbms_receiver *sentinel = (mbms_receiver *)(uintptr_t)0x1;
    mbms_receiver *s = sentinel;
    /* From another key, truncated, altered, empty, garbage: MBMS_ERR_STATE. */
    CHECK_RC(mbms_receiver_restore(FQDN, BTID, KS, 32, key_b, 32, blob, blob_len, &s),
             MBMS_ERR_STATE);
    CHECK_RC(mbms_receiver_restore(FQDN, BTID, KS, 32, key_a, 32, blob, blob_len - 1, &s),
             MBMS_ERR_STATE);
    blob[blob_len / 2] ^= 0x40;
    CHECK_RC(mbms_receiver_restore(FQDN, BTID, KS, 32, key_a, 32, blob, blob_len, &s),
             MBMS_ERR_STATE);
    blob[blob_len / 2] ^= 0x40;
    CHECK_RC(mbms_receiver_restore(FQDN, BTID, KS, 32, key_a, 32, blob, 0, &s), MBMS_ERR_STATE);
    uint8_t garbage[100];
    memset(garbage, 0x33, sizeof garbage);
    CHECK_RC(mbms_receiver_restore(FQDN, BTID, KS, 32, key_a, 32, garbage, sizeof garbage, &s),
             MBMS_ERR_STATE);
    /* NULL and length errors. */
    CHECK_RC(mbms_receiver_restore(FQDN, BTID, KS, 32, NULL, 32, blob, blob_len, &s),
             MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_restore(FQDN, BTID, KS, 32, key_a, 32, NULL, blob_len, &s),
             MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_restore(FQDN, BTID, KS, 32, key_a, 32, blob, blob_len, NULL),
             MBMS_ERR_NULL);
    CHECK_RC(mbms_receiver_restore(FQDN, BTID, KS, 32, key_a, 31, blob, blob_len, &s),
             MBMS_ERR_INVALID);
    CHECK_RC(mbms_receiver_restore(FQDN, "bad", KS, 32, key_a, 32, blob, blob_len, &s),
             MBMS_ERR_INVALID);
    CHECK(s == sentinel);
    /* The right key still opens it. */
    CHECK_RC(mbms_receiver_restore(FQDN, BTID, KS, 32, key_a, 32, blob, blob_len, &s), MBMS_OK);
    mbms_receiver_free(s);
}

static void garbage_datagrams(void) {
    mbms_receiver *r = NULL;
    CHECK_RC(mbms_receiver_new(FQDN, BTID, KS, 32, &r), MBMS_OK);
    static uint8_t d[65535];
    uint8_t ack[MBMS_ACK_MAX_LEN];
    uint32_t x = 0x12345678;
    int ok = 0, silent = 0, discarded = 0;
    const int rounds = 2000;
    for (int i = 0; i < rounds; i++) {
        size_t len = (i == rounds - 1) ? sizeof d : (size_t)(i % 300);
        for (size_t j = 0; j < len; j++) {
            x = x * 1664525u + 1013904223u;
            d[j] = (uint8_t)(x >> 24);
        }
        /* Half of them start like a MIKEY header (version 1, PSK init). */
        if (len >= 2 && (i & 1)) {
            d[0] = 0x01;
            d[1] = 0x00;
        }
        size_t ack_len = 99;
        if (mbms_receiver_handle_datagram(r, (uint64_t)i, d, len, ack, sizeof ack, &ack_len) ==
            MBMS_OK) {
            ok++;
        }
        if (ack_len == 0) {
            silent++;
        }
        mbms_event ev;
        while (mbms_receiver_poll_event(r, &ev) == MBMS_OK) {
            if (ev.kind == MBMS_EVENT_DISCARDED) {
                discarded++;
            }
        }
    }
    CHECK(ok == rounds);
    CHECK(silent == rounds);
    CHECK(discarded == rounds);
    mbms_receiver_free(r);
}

/* The driver level: NULL pointers, malformed settings, a start without keys or FQDN, lookups
 * with nothing held, and free of NULL. A push-only client (no BM-SC URL) starts on loopback. */
static void driver_level(void) {
    mbms_client_config *c = NULL;
    CHECK_RC(mbms_client_config_new(NULL), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_config_new(&c), MBMS_OK);
    CHECK(c != NULL);
    CHECK_RC(mbms_client_config_set_bmsc_url(NULL, "http://127.0.0.1:8080"), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_config_set_bmsc_url(c, NULL), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_config_set_bmsc_url(c, "ftp://bmsc"), MBMS_ERR_INVALID);
    CHECK_RC(mbms_client_config_set_bmsc_fqdn(c, ""), MBMS_ERR_INVALID);
    CHECK_RC(mbms_client_config_set_bmsc_fqdn(c, "\xff\xfe"), MBMS_ERR_INVALID);
    CHECK_RC(mbms_client_config_set_gba(c, NULL, KS, 32), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_config_set_gba(c, BTID, NULL, 32), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_config_set_gba(c, BTID, KS, 31), MBMS_ERR_INVALID);
    CHECK_RC(mbms_client_config_set_gba(c, "no-at-sign", KS, 32), MBMS_ERR_INVALID);
    CHECK_RC(mbms_client_config_set_listen(c, "not an address"), MBMS_ERR_INVALID);
    CHECK_RC(mbms_client_config_add_service(c, ""), MBMS_ERR_INVALID);
    CHECK_RC(mbms_client_config_add_join(c, "not a group"), MBMS_ERR_INVALID);
    CHECK_RC(mbms_client_config_add_join(NULL, "239.1.1.1:2269"), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_config_add_key_group(c, NULL), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_config_set_state_file(c, ""), MBMS_ERR_INVALID);

    mbms_client *sentinel = (mbms_client *)(uintptr_t)0x1;
    mbms_client *cl = sentinel;
    CHECK_RC(mbms_client_start(NULL, NULL, NULL, &cl), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_start(c, NULL, NULL, NULL), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_start(c, NULL, NULL, &cl), MBMS_ERR_KEYS); /* no GBA keys yet */
    CHECK_RC(mbms_client_config_set_gba(c, BTID, KS, 32), MBMS_OK);
    CHECK_RC(mbms_client_start(c, NULL, NULL, &cl), MBMS_ERR_INVALID); /* no FQDN nor URL */
    CHECK(cl == NULL); /* set to NULL on error, as documented */
    CHECK_RC(mbms_client_config_set_bmsc_fqdn(c, FQDN), MBMS_OK);
    CHECK_RC(mbms_client_config_set_listen(c, "127.0.0.1:0"), MBMS_OK);
    CHECK_RC(mbms_client_start(c, NULL, NULL, &cl), MBMS_OK);
    CHECK(cl != sentinel && cl != NULL);
    mbms_client_config_free(c);

    uint16_t port = 0;
    mbms_srtp_key key;
    static const uint8_t mki[6] = {0, 0, 0, 1, 0, 1};
    CHECK_RC(mbms_client_local_port(cl, &port), MBMS_OK);
    CHECK(port != 0);
    CHECK_RC(mbms_client_local_port(NULL, &port), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_local_port(cl, NULL), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_key_by_mki(cl, mki, sizeof mki, &key), MBMS_ERR_NOT_FOUND);
    CHECK_RC(mbms_client_key_by_mki(cl, mki, 2, &key), MBMS_ERR_NOT_FOUND);
    CHECK_RC(mbms_client_key_by_mki(cl, NULL, sizeof mki, &key), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_key_by_mki(cl, mki, sizeof mki, NULL), MBMS_ERR_NULL);
    CHECK_RC(mbms_client_key_by_ssrc(cl, 0x11223344u, &key), MBMS_ERR_NOT_FOUND);
    CHECK_RC(mbms_client_key_by_ssrc(NULL, 0x11223344u, &key), MBMS_ERR_NULL);
    mbms_client_free(cl);
    mbms_client_free(NULL);
    mbms_client_free(NULL);
    mbms_client_config_free(NULL);
    CHECK(1);
}

int main(void) {
    for (int i = 0; i < 32; i++) KS[i] = (uint8_t)(0x30 + i);
    names();
    creation();
    calls_on_null_handles();
    calls_with_bad_arguments();
    state_blobs();
    garbage_datagrams();
    driver_level();
    return report("bad_input");
}
