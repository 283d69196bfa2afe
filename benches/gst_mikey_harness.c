/*
 * GStreamer side of `benches/codec-vs-gstreamer.sh`: MIKEY parse and
 * parse+encode throughput of gstmikey (libgstsdp-1.0).
 *
 *   gst_mikey_harness HEX N
 *
 * Checks once that gst_mikey_message_to_bytes() gives back the input octets,
 * then times (CLOCK_MONOTONIC) N iterations of
 *   parse:        gst_mikey_message_new_from_data + unref
 *   parse+encode: gst_mikey_message_new_from_data + to_bytes + unrefs
 * and prints "parse_ns_per_op X" and "parse_encode_ns_per_op Y".
 *
 * GStreamer hangs on EXT (21) and ID (6) payloads: run it under `timeout`.
 * Build: gcc -O2 gst_mikey_harness.c $(pkg-config --cflags --libs gstreamer-sdp-1.0 gstreamer-1.0)
 */
#include <gst/gst.h>
#include <gst/sdp/gstmikey.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile guintptr sink;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static guint8 *parse_hex(const char *s, gsize *len)
{
    gsize n = strlen(s);
    guint8 *out;
    gsize i;

    if (n == 0 || n % 2 != 0)
        return NULL;
    out = g_malloc(n / 2);
    for (i = 0; i < n / 2; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            g_free(out);
            return NULL;
        }
        out[i] = (guint8)(hi << 4 | lo);
    }
    *len = n / 2;
    return out;
}

static GstMIKEYMessage *parse_or_die(const guint8 *data, gsize len)
{
    GError *err = NULL;
    GstMIKEYMessage *m = gst_mikey_message_new_from_data(data, len, NULL, &err);
    if (m == NULL) {
        fprintf(stderr, "error: gst_mikey_message_new_from_data failed: %s\n",
                err ? err->message : "(no message)");
        g_clear_error(&err);
        exit(1);
    }
    return m;
}

static GBytes *encode_or_die(GstMIKEYMessage *m)
{
    GError *err = NULL;
    GBytes *b = gst_mikey_message_to_bytes(m, NULL, &err);
    if (b == NULL) {
        fprintf(stderr, "error: gst_mikey_message_to_bytes failed: %s\n",
                err ? err->message : "(no message)");
        g_clear_error(&err);
        exit(1);
    }
    return b;
}

int main(int argc, char **argv)
{
    gsize len = 0, enc_len = 0, i;
    guint8 *data;
    long long n;
    GstMIKEYMessage *m;
    GBytes *b;
    const guint8 *enc;
    double t0, parse_ns, parse_encode_ns;

    if (argc != 3) {
        fprintf(stderr, "usage: %s HEX N\n", argv[0]);
        return 2;
    }
    data = parse_hex(argv[1], &len);
    n = atoll(argv[2]);
    if (data == NULL || n <= 0) {
        fprintf(stderr, "error: need an even-length hex message and N > 0\n");
        return 2;
    }
    gst_init(NULL, NULL);

    /* Round trip once: the re-encoding must equal the input. */
    m = parse_or_die(data, len);
    b = encode_or_die(m);
    enc = g_bytes_get_data(b, &enc_len);
    if (enc_len != len || memcmp(enc, data, len) != 0) {
        fprintf(stderr, "error: GStreamer re-encoding differs from the input (%zu vs %zu octets)\n",
                (size_t)enc_len, (size_t)len);
        g_bytes_unref(b);
        gst_mikey_message_unref(m);
        g_free(data);
        return 1;
    }
    g_bytes_unref(b);
    gst_mikey_message_unref(m);

    /* Warm-up. */
    for (i = 0; i < (gsize)(n / 10 + 1); i++) {
        m = parse_or_die(data, len);
        sink ^= (guintptr)m;
        gst_mikey_message_unref(m);
    }

    t0 = now_ns();
    for (i = 0; i < (gsize)n; i++) {
        m = parse_or_die(data, len);
        sink ^= (guintptr)m;
        gst_mikey_message_unref(m);
    }
    parse_ns = (now_ns() - t0) / (double)n;

    t0 = now_ns();
    for (i = 0; i < (gsize)n; i++) {
        m = parse_or_die(data, len);
        b = encode_or_die(m);
        sink ^= (guintptr)g_bytes_get_size(b);
        g_bytes_unref(b);
        gst_mikey_message_unref(m);
    }
    parse_encode_ns = (now_ns() - t0) / (double)n;

    printf("octets %zu\n", (size_t)len);
    printf("iterations %lld\n", n);
    printf("parse_ns_per_op %.1f\n", parse_ns);
    printf("parse_encode_ns_per_op %.1f\n", parse_encode_ns);
    g_free(data);
    return 0;
}
