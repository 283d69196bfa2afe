/*
 * mbms-play: a small MBMS streaming client in C.
 *
 * It registers to an MBMS user service with the driver level of libmbms_keys (the library owns
 * the MIKEY socket, the multicast groups and a thread), receives the MSKs and MTKs, and
 * decrypts the service's SRTP multicast stream with GStreamer's srtpdec:
 *
 *   udpsrc (the media group, caps application/x-srtp) ! srtpdec ! appsink   [! tee ! player]
 *
 * srtpdec asks for keys with its "request-key" signal (per SSRC); the answer carries every MTK
 * the library holds for that SSRC, each with its MKI (srtp-key/mki, srtp-key2/mki2, ...), so
 * libsrtp picks the key by the MKI of each packet. When a new MTK arrives (MTK_READY), the
 * stream is dropped from srtpdec ("remove-key") on the streaming thread before the next packet,
 * so that srtpdec asks again and learns the new MTK before packets under it arrive.
 *
 * Output (--out): the RTP payloads of the decrypted packets, concatenated in arrival order (no
 * framing, no RTP header). Usage: see usage() below and README.md, section "A C player".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>
#include <gst/app/gstappsink.h>
#include <gst/gst.h>

#include <mbms_keys.h>

/* srtpdec (libsrtp2) takes at most 16 master keys per stream. */
#define MAX_KEYS 16
/* MKIs remembered from MTK_READY events (the newest ones are offered first). */
#define MAX_MKIS 32
/* SSRCs tracked on the streaming thread; packets of further SSRCs are still decrypted. */
#define MAX_SSRCS 16
#define MKI_LEN 6

struct options {
  const char *bmsc, *fqdn, *btid, *ks_naf_hex, *listen, *state, *media, *out, *caps;
  const char *play_sink;
  const char *services[16];
  int n_services;
  const char *joins[16];
  int n_joins;
  const char *key_groups[16];
  int n_key_groups;
  gboolean play, verbose;
  guint64 count;
  double duration;
};

/* Per-SSRC state, touched only on the streaming thread (probe, request-key, appsink). */
struct ssrc_state {
  guint32 ssrc;
  gboolean used;
  gboolean keyed;       /* srtpdec holds a stream for it */
  guint gen;            /* key generation the stream was built from */
  guint16 pending_seq;  /* sequence number of the packet entering srtpdec */
  gboolean have_last;   /* last decrypted packet known */
  guint16 last_seq;
  guint32 last_roc;
  guint32 given_roc;    /* ROC handed to srtpdec with the current stream */
};

struct app {
  struct options opt;
  mbms_client *client;
  GstElement *pipeline, *srtpdec;
  GMainLoop *loop;
  FILE *out;
  int exit_code;
  /* Written by the library's thread, read by the streaming thread. */
  GMutex mki_lock;
  uint8_t mkis[MAX_MKIS][MKI_LEN];
  int n_mkis;              /* oldest first */
  gint key_gen;            /* bumped at each MTK_READY */
  gint mtk_ready;          /* MTK_READY events seen */
  gint msk_events;
  /* Streaming thread only. */
  struct ssrc_state ssrcs[MAX_SSRCS];
  guint64 packets, bytes, key_requests, rekeys, unanswered;
};

static struct app APP;

static void usage(FILE *f) {
  fprintf(f,
          "usage: mbms-play --bmsc URL --btid B-TID --ks-naf HEX --service ID\n"
          "                 --join GROUP:PORT[%%IFACE] --media GROUP:PORT[%%IFACE] --out FILE\n"
          "                 [--listen ADDR:PORT] [--fqdn NAME] [--key-group KD:GROUP]\n"
          "                 [--state FILE] [--caps FIELDS] [--play] [--play-sink DESC]\n"
          "                 [--count N] [--duration SECONDS] [--verbose]\n"
          "  --bmsc        the BM-SC Key Request function, http://host:port\n"
          "  --btid/--ks-naf  GBA_ME identity and Ks_NAF (64 hex digits)\n"
          "  --service     MBMS user service to register to (repeatable)\n"
          "  --join        multicast group of the MTK messages (repeatable)\n"
          "  --media       IPv4 group (or unicast address) and port of the SRTP stream;\n"
          "                %%IFACE is the interface address to join on, e.g. %%127.0.0.1\n"
          "  --out         file receiving the decrypted RTP payloads, concatenated\n"
          "  --listen      where MIKEY pushes arrive (default 0.0.0.0:2269)\n"
          "  --fqdn        BM-SC FQDN (MIKEY IDi), by default the host of --bmsc\n"
          "  --caps        extra RTP caps fields, e.g. media=audio,clock-rate=8000,"
          "encoding-name=L16\n"
          "  --play        also render the stream (--play-sink: the GStreamer branch,\n"
          "                default \"rtpjitterbuffer ! decodebin ! audioconvert ! "
          "autoaudiosink\")\n"
          "  --count N     stop after N decrypted packets; --duration S: after S seconds\n");
}

static int parse_args(int argc, char **argv, struct options *o) {
  memset(o, 0, sizeof *o);
  o->listen = "0.0.0.0:2269";
  o->play_sink = "rtpjitterbuffer ! decodebin ! audioconvert ! autoaudiosink";
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, field)                                                                      \
  if (strcmp(a, name) == 0) {                                                                 \
    if (!v) {                                                                                 \
      fprintf(stderr, "error: %s needs a value\n", name);                                     \
      return -1;                                                                              \
    }                                                                                         \
    o->field = v;                                                                             \
    i++;                                                                                      \
    continue;                                                                                 \
  }
#define LIST(name, arr, n)                                                                    \
  if (strcmp(a, name) == 0) {                                                                 \
    if (!v || o->n >= (int)G_N_ELEMENTS(o->arr)) {                                            \
      fprintf(stderr, "error: %s needs a value (at most %d)\n", name,                         \
              (int)G_N_ELEMENTS(o->arr));                                                     \
      return -1;                                                                              \
    }                                                                                         \
    o->arr[o->n++] = v;                                                                       \
    i++;                                                                                      \
    continue;                                                                                 \
  }
    OPT("--bmsc", bmsc)
    OPT("--fqdn", fqdn)
    OPT("--btid", btid)
    OPT("--ks-naf", ks_naf_hex)
    OPT("--listen", listen)
    OPT("--state", state)
    OPT("--media", media)
    OPT("--out", out)
    OPT("--caps", caps)
    OPT("--play-sink", play_sink)
    LIST("--service", services, n_services)
    LIST("--join", joins, n_joins)
    LIST("--key-group", key_groups, n_key_groups)
    if (strcmp(a, "--play") == 0) {
      o->play = TRUE;
      continue;
    }
    if (strcmp(a, "--verbose") == 0) {
      o->verbose = TRUE;
      continue;
    }
    if (strcmp(a, "--count") == 0 && v) {
      char *end = NULL;
      errno = 0;
      unsigned long long n = strtoull(v, &end, 10);
      if (errno || !end || *end || n == 0) {
        fprintf(stderr, "error: --count needs a positive number\n");
        return -1;
      }
      o->count = n;
      i++;
      continue;
    }
    if (strcmp(a, "--duration") == 0 && v) {
      char *end = NULL;
      errno = 0;
      double d = strtod(v, &end);
      if (errno || !end || *end || !(d > 0) || d > 86400.0 * 365) {
        fprintf(stderr, "error: --duration needs a positive number of seconds\n");
        return -1;
      }
      o->duration = d;
      i++;
      continue;
    }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      exit(0);
    }
    fprintf(stderr, "error: unknown or incomplete argument %s\n", a);
    return -1;
  }
  if (!o->btid || !o->ks_naf_hex || !o->media || !o->out || (!o->bmsc && !o->fqdn)) {
    fprintf(stderr, "error: --btid, --ks-naf, --media, --out and --bmsc (or --fqdn for "
                    "push only) are required\n");
    return -1;
  }
  if (o->bmsc && o->n_services == 0) {
    fprintf(stderr, "error: --service is required with --bmsc\n");
    return -1;
  }
  return 0;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Exactly `len` octets of hex into out; -1 otherwise. */
static int parse_hex(const char *s, uint8_t *out, size_t len) {
  if (strlen(s) != 2 * len) return -1;
  for (size_t i = 0; i < len; i++) {
    int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

static void print_mki(FILE *f, const uint8_t *mki) {
  for (int i = 0; i < MKI_LEN; i++) fprintf(f, "%02x", mki[i]);
}

/* The client, once mbms_client_start has returned (events may come before). */
static mbms_client *client(void) {
  return g_atomic_pointer_get(&APP.client);
}

/* ---- events (library thread) ---- */

static void remember_mki(const uint8_t *mki) {
  g_mutex_lock(&APP.mki_lock);
  for (int i = 0; i < APP.n_mkis; i++) {
    if (memcmp(APP.mkis[i], mki, MKI_LEN) == 0) {
      g_mutex_unlock(&APP.mki_lock);
      return;
    }
  }
  if (APP.n_mkis == MAX_MKIS) {
    memmove(APP.mkis[0], APP.mkis[1], (MAX_MKIS - 1) * MKI_LEN);
    APP.n_mkis--;
  }
  memcpy(APP.mkis[APP.n_mkis++], mki, MKI_LEN);
  g_mutex_unlock(&APP.mki_lock);
}

static void on_event(void *userdata, const mbms_event *ev) {
  struct app *app = userdata;
  switch (ev->kind) {
  case MBMS_EVENT_MTK_READY: {
    /* The library put the MTK in its table before calling: the lookup works from here. */
    mbms_srtp_key k;
    mbms_result r = mbms_client_key_by_mki(g_atomic_pointer_get(&app->client), ev->mki, MKI_LEN,
                                           &k);
    remember_mki(ev->mki);
    g_atomic_int_inc(&app->mtk_ready);
    g_atomic_int_inc(&app->key_gen);
    printf("event MTK_READY kd=%06" PRIx32 " msk=%08" PRIx32 " mtk=%u mki=", ev->key_domain_id,
           ev->msk_id, (unsigned)ev->mtk_id);
    print_mki(stdout, ev->mki);
    if (r == MBMS_OK)
      printf(" ssrc=%08" PRIx32 " roc=%" PRIu32 "\n", k.ssrc, k.roc);
    else
      printf(" lookup=%s\n", mbms_result_name(r));
    explicit_bzero(&k, sizeof k);
    break;
  }
  case MBMS_EVENT_MSK_INSTALLED:
  case MBMS_EVENT_MSK_UPDATED:
    g_atomic_int_inc(&app->msk_events);
    printf("event %s kd=%06" PRIx32 " msk=%08" PRIx32 " seql=%u sequ=%u\n",
           ev->kind == MBMS_EVENT_MSK_INSTALLED ? "MSK_INSTALLED" : "MSK_UPDATED",
           ev->key_domain_id, ev->msk_id, (unsigned)ev->seql, (unsigned)ev->sequ);
    break;
  case MBMS_EVENT_MSK_INVALIDATED:
    printf("event MSK_INVALIDATED kd=%06" PRIx32 " msk=%08" PRIx32 "\n", ev->key_domain_id,
           ev->msk_id);
    break;
  case MBMS_EVENT_MSK_REQUEST_NEEDED:
    printf("event MSK_REQUEST_NEEDED msk=%08" PRIx32 "\n", ev->msk_id);
    break;
  case MBMS_EVENT_MSK_REQUEST_FAILED:
    printf("event MSK_REQUEST_FAILED msk=%08" PRIx32 " code=%u\n", ev->msk_id,
           (unsigned)ev->code);
    break;
  case MBMS_EVENT_DISCARDED:
    if (app->opt.verbose)
      printf("event DISCARDED %s\n", mbms_discard_reason_name(ev->discard_reason));
    break;
  default:
    break;
  }
  fflush(stdout);
}

/* ---- the streaming thread: probe, request-key, appsink ---- */

static struct ssrc_state *ssrc_state(guint32 ssrc, gboolean create) {
  for (int i = 0; i < MAX_SSRCS; i++)
    if (APP.ssrcs[i].used && APP.ssrcs[i].ssrc == ssrc) return &APP.ssrcs[i];
  if (!create) return NULL;
  for (int i = 0; i < MAX_SSRCS; i++) {
    if (!APP.ssrcs[i].used) {
      memset(&APP.ssrcs[i], 0, sizeof APP.ssrcs[i]);
      APP.ssrcs[i].used = TRUE;
      APP.ssrcs[i].ssrc = ssrc;
      return &APP.ssrcs[i];
    }
  }
  return NULL;
}

/* RFC 3711 §3.3.1: the ROC of sequence number s given the last (roc, seq) decrypted. */
static guint32 estimate_roc(guint32 roc, guint16 last, guint16 s) {
  if (last < 32768) {
    if ((int)s - (int)last > 32768 && roc > 0) return roc - 1;
    return roc;
  }
  if ((int)last - 32768 > (int)s) return roc + 1;
  return roc;
}

/* Reads SSRC and sequence number of an RTP/SRTP packet (the header is never encrypted). */
static gboolean rtp_ids(const guint8 *p, gsize n, guint32 *ssrc, guint16 *seq) {
  if (n < 12 || (p[0] >> 6) != 2) return FALSE;
  *seq = (guint16)(p[2] << 8 | p[3]);
  *ssrc = (guint32)p[8] << 24 | (guint32)p[9] << 16 | (guint32)p[10] << 8 | p[11];
  return TRUE;
}

/* Before srtpdec: a stream keyed before the newest MTK_READY is removed, so that srtpdec asks
 * for keys again with this packet. Runs on the streaming thread, so srtpdec is not decoding. */
static GstPadProbeReturn before_srtpdec(GstPad *pad, GstPadProbeInfo *info, gpointer data) {
  (void)pad;
  (void)data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
  GstMapInfo map;
  if (!buf || !gst_buffer_map(buf, &map, GST_MAP_READ)) return GST_PAD_PROBE_OK;
  guint32 ssrc;
  guint16 seq;
  gboolean ok = rtp_ids(map.data, map.size, &ssrc, &seq);
  gst_buffer_unmap(buf, &map);
  if (!ok) return GST_PAD_PROBE_OK;
  struct ssrc_state *st = ssrc_state(ssrc, TRUE);
  if (!st) return GST_PAD_PROBE_OK;
  st->pending_seq = seq;
  guint gen = (guint)g_atomic_int_get(&APP.key_gen);
  if (st->keyed && st->gen != gen) {
    g_signal_emit_by_name(APP.srtpdec, "remove-key", ssrc);
    st->keyed = FALSE;
    APP.rekeys++;
  }
  return GST_PAD_PROBE_OK;
}

struct wiped {
  gsize len;
  guint8 data[];
};

static void wipe_free(gpointer p) {
  struct wiped *w = p;
  explicit_bzero(w->data, w->len);
  g_free(w);
}

/* A GstBuffer holding a copy of `len` octets that is wiped when freed. */
static GstBuffer *secret_buffer(const guint8 *a, gsize alen, const guint8 *b, gsize blen) {
  struct wiped *w = g_malloc(sizeof *w + alen + blen);
  w->len = alen + blen;
  memcpy(w->data, a, alen);
  if (blen) memcpy(w->data + alen, b, blen);
  return gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, w->data, w->len, 0, w->len, w,
                                     wipe_free);
}

static void set_buffer(GstStructure *s, const char *field, int index, GstBuffer *b) {
  char name[32];
  if (index == 0)
    g_snprintf(name, sizeof name, "%s", field);
  else
    g_snprintf(name, sizeof name, "%s%d", field, index + 1);
  gst_structure_set(s, name, GST_TYPE_BUFFER, b, NULL);
  gst_buffer_unref(b);
}

/* srtpdec's request-key: every held MTK of this SSRC with its MKI, the newest first. */
static GstCaps *on_request_key(GstElement *dec, guint ssrc, gpointer data) {
  (void)dec;
  (void)data;
  APP.key_requests++;
  mbms_client *cl = client();
  if (!cl) return NULL;
  uint8_t mkis[MAX_MKIS][MKI_LEN];
  g_mutex_lock(&APP.mki_lock);
  int n = APP.n_mkis;
  memcpy(mkis, APP.mkis, sizeof mkis);
  g_mutex_unlock(&APP.mki_lock);

  mbms_srtp_key newest;
  mbms_result r = mbms_client_key_by_ssrc(cl, ssrc, &newest);
  if (r != MBMS_OK) {
    APP.unanswered++;
    if (APP.opt.verbose)
      fprintf(stderr, "request-key ssrc=%08x: %s\n", ssrc, mbms_result_name(r));
    return NULL;
  }
  const char *auth = newest.policy == MBMS_SRTP_AES_CM_128_HMAC_SHA1_32 ? "hmac-sha1-32"
                                                                        : "hmac-sha1-80";
  GstStructure *s = gst_structure_new("application/x-srtp", "srtp-cipher", G_TYPE_STRING,
                                      "aes-128-icm", "srtp-auth", G_TYPE_STRING, auth,
                                      "srtcp-cipher", G_TYPE_STRING, "aes-128-icm", "srtcp-auth",
                                      G_TYPE_STRING, auth, NULL);
  int keys = 0;
  /* The newest MTK of the SSRC, then the others it still names, newest first. */
  for (int i = -1; i < n && keys < MAX_KEYS; i++) {
    mbms_srtp_key k;
    if (i < 0) {
      k = newest;
    } else {
      const uint8_t *mki = mkis[n - 1 - i];
      if (memcmp(mki, newest.mki, MKI_LEN) == 0) continue;
      if (mbms_client_key_by_mki(cl, mki, MKI_LEN, &k) != MBMS_OK) continue;
      if (k.ssrc != ssrc || k.policy != newest.policy) {
        explicit_bzero(&k, sizeof k);
        continue;
      }
    }
    if (k.master_key_len != 16 || k.master_salt_len != 14 || k.mki_len != MKI_LEN) {
      explicit_bzero(&k, sizeof k);
      continue;
    }
    set_buffer(s, "srtp-key", keys, secret_buffer(k.master_key, 16, k.master_salt, 14));
    set_buffer(s, "mki", keys, gst_buffer_new_memdup(k.mki, MKI_LEN));
    keys++;
    explicit_bzero(&k, sizeof k);
  }
  guint32 table_roc = newest.roc;
  explicit_bzero(&newest, sizeof newest);
  if (keys == 0) {
    gst_structure_free(s);
    APP.unanswered++;
    return NULL;
  }
  struct ssrc_state *st = ssrc_state(ssrc, TRUE);
  guint32 roc = table_roc;
  if (st) {
    /* Continuing a stream: the ROC follows from the packets decrypted so far. */
    if (st->have_last) roc = estimate_roc(st->last_roc, st->last_seq, st->pending_seq);
    st->keyed = TRUE;
    st->gen = (guint)g_atomic_int_get(&APP.key_gen);
    st->given_roc = roc;
  }
  gst_structure_set(s, "roc", G_TYPE_UINT, roc, NULL);
  if (APP.opt.verbose)
    fprintf(stderr, "request-key ssrc=%08x: %d keys, roc %u\n", ssrc, keys, roc);
  GstCaps *caps = gst_caps_new_empty();
  gst_caps_append_structure(caps, s);
  return caps;
}

static void stop_loop(void) {
  if (APP.loop) g_main_loop_quit(APP.loop);
}

static gboolean stop_idle(gpointer data) {
  (void)data;
  stop_loop();
  return G_SOURCE_REMOVE;
}

static GstFlowReturn on_sample(GstAppSink *sink, gpointer data) {
  (void)data;
  GstSample *sample = gst_app_sink_pull_sample(sink);
  if (!sample) return GST_FLOW_EOS;
  GstBuffer *buf = gst_sample_get_buffer(sample);
  GstMapInfo map;
  GstFlowReturn ret = GST_FLOW_OK;
  if (buf && gst_buffer_map(buf, &map, GST_MAP_READ)) {
    const guint8 *p = map.data;
    gsize n = map.size;
    guint32 ssrc;
    guint16 seq;
    if (rtp_ids(p, n, &ssrc, &seq)) {
      /* RFC 3550 §5.1: fixed header, CSRCs, extension, padding. */
      gsize off = 12 + 4 * (gsize)(p[0] & 0x0f);
      if ((p[0] & 0x10) && n >= off + 4) off += 4 + 4 * (gsize)(p[off + 2] << 8 | p[off + 3]);
      gsize end = n;
      if ((p[0] & 0x20) && n > 0) {
        gsize pad = p[n - 1];
        end = pad <= n ? n - pad : 0;
      }
      if (off <= end) {
        if (fwrite(p + off, 1, end - off, APP.out) != end - off) {
          fprintf(stderr, "error: writing %s: %s\n", APP.opt.out, strerror(errno));
          APP.exit_code = 1;
          ret = GST_FLOW_ERROR;
        }
        APP.packets++;
        APP.bytes += end - off;
      }
      struct ssrc_state *st = ssrc_state(ssrc, TRUE);
      if (st && !st->have_last) {
        st->last_roc = st->given_roc;
        st->last_seq = seq;
        st->have_last = TRUE;
      } else if (st) {
        /* The highest index decrypted so far (packets come in order on a simple path). */
        guint32 v = estimate_roc(st->last_roc, st->last_seq, seq);
        if (v > st->last_roc || (v == st->last_roc && seq > st->last_seq)) {
          st->last_roc = v;
          st->last_seq = seq;
        }
      }
    }
    gst_buffer_unmap(buf, &map);
  }
  gst_sample_unref(sample);
  if (APP.opt.count && APP.packets >= APP.opt.count) {
    g_idle_add(stop_idle, NULL);
  }
  return ret;
}

static gboolean on_bus(GstBus *bus, GstMessage *msg, gpointer data) {
  (void)bus;
  (void)data;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gchar *dbg = NULL;
    gst_message_parse_error(msg, &err, &dbg);
    fprintf(stderr, "error: GStreamer: %s (%s)\n", err ? err->message : "?", dbg ? dbg : "");
    g_clear_error(&err);
    g_free(dbg);
    APP.exit_code = 1;
    stop_loop();
  } else if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_EOS) {
    stop_loop();
  }
  return TRUE;
}

static gboolean on_signal(gpointer data) {
  (void)data;
  stop_loop();
  return G_SOURCE_CONTINUE;
}

static gboolean on_timeout(gpointer data) {
  (void)data;
  stop_loop();
  return G_SOURCE_REMOVE;
}

/* The media socket: GROUP:PORT[%IFACE]; a multicast group is joined on IFACE (an IPv4 address,
 * default any). */
static int media_socket(const char *spec, GSocket **out) {
  char host[64];
  const char *colon = strrchr(spec, ':');
  if (!colon || (size_t)(colon - spec) >= sizeof host) return -1;
  memcpy(host, spec, (size_t)(colon - spec));
  host[colon - spec] = 0;
  char *end = NULL;
  errno = 0;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (errno || end == colon + 1 || port == 0 || port > 65535) return -1;
  struct in_addr iface = {.s_addr = htonl(INADDR_ANY)};
  if (*end == '%') {
    if (inet_pton(AF_INET, end + 1, &iface) != 1) return -1;
  } else if (*end != 0) {
    return -1;
  }
  struct in_addr group;
  if (inet_pton(AF_INET, host, &group) != 1) return -1;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -2;
  int one = 1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                           .sin_addr = group};
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -2;
  }
  if (IN_MULTICAST(ntohl(group.s_addr))) {
    struct ip_mreq mreq = {.imr_multiaddr = group, .imr_interface = iface};
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mreq, sizeof mreq) != 0) {
      close(fd);
      return -2;
    }
  }
  int rcvbuf = 1 << 20;
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  GError *err = NULL;
  GSocket *s = g_socket_new_from_fd(fd, &err);
  if (!s) {
    fprintf(stderr, "error: media socket: %s\n", err ? err->message : "?");
    g_clear_error(&err);
    close(fd);
    return -2;
  }
  *out = s;
  return 0;
}

static GstElement *make(const char *factory, const char *name) {
  GstElement *e = gst_element_factory_make(factory, name);
  if (!e) fprintf(stderr, "error: GStreamer element %s is missing\n", factory);
  return e;
}

static int build_pipeline(struct app *app, GSocket *sock) {
  GstElement *src = make("udpsrc", "src"), *dec = make("srtpdec", "dec"),
             *sink = make("appsink", "sink");
  if (!src || !dec || !sink) return -1;
  gchar *caps_text = g_strdup_printf("application/x-srtp%s%s", app->opt.caps ? "," : "",
                                     app->opt.caps ? app->opt.caps : "");
  GstCaps *caps = gst_caps_from_string(caps_text);
  g_free(caps_text);
  if (!caps) {
    fprintf(stderr, "error: --caps: not GStreamer caps fields\n");
    return -1;
  }
  g_object_set(src, "socket", sock, "close-socket", TRUE, "caps", caps, NULL);
  gst_caps_unref(caps);
  g_object_set(sink, "sync", FALSE, "async", FALSE, "max-buffers", 0u, NULL);
  app->pipeline = gst_pipeline_new("mbms-play");
  app->srtpdec = dec;
  gst_bin_add_many(GST_BIN(app->pipeline), src, dec, NULL);
  if (!gst_element_link_pads(src, "src", dec, "rtp_sink")) {
    fprintf(stderr, "error: cannot link udpsrc to srtpdec\n");
    return -1;
  }
  if (app->opt.play) {
    GError *err = NULL;
    gchar *desc = g_strdup_printf("queue ! %s", app->opt.play_sink);
    GstElement *player = gst_parse_bin_from_description(desc, TRUE, &err);
    g_free(desc);
    if (!player) {
      fprintf(stderr, "error: --play-sink: %s\n", err ? err->message : "?");
      g_clear_error(&err);
      return -1;
    }
    /* The appsink branch has no queue: it runs on the streaming thread, as the probe and
     * request-key do, so their per-SSRC state needs no lock. The player branch has its own. */
    GstElement *tee = make("tee", "tee");
    if (!tee) return -1;
    gst_bin_add_many(GST_BIN(app->pipeline), tee, sink, player, NULL);
    if (!gst_element_link_pads(dec, "rtp_src", tee, "sink") || !gst_element_link(tee, sink) ||
        !gst_element_link(tee, player)) {
      fprintf(stderr, "error: cannot link the player branch\n");
      return -1;
    }
  } else {
    gst_bin_add(GST_BIN(app->pipeline), sink);
    if (!gst_element_link_pads(dec, "rtp_src", sink, "sink")) {
      fprintf(stderr, "error: cannot link srtpdec to appsink\n");
      return -1;
    }
  }
  GstAppSinkCallbacks cbs = {0};
  cbs.new_sample = on_sample;
  gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cbs, NULL, NULL);
  g_signal_connect(dec, "request-key", G_CALLBACK(on_request_key), NULL);
  GstPad *pad = gst_element_get_static_pad(dec, "rtp_sink");
  if (!pad) return -1;
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, before_srtpdec, NULL, NULL);
  gst_object_unref(pad);
  GstBus *bus = gst_element_get_bus(app->pipeline);
  gst_bus_add_watch(bus, on_bus, NULL);
  gst_object_unref(bus);
  return 0;
}

#define CHECK(call)                                                                           \
  do {                                                                                        \
    mbms_result r_ = (call);                                                                  \
    if (r_ != MBMS_OK) {                                                                      \
      fprintf(stderr, "error: %s: %s\n", #call, mbms_result_name(r_));                        \
      goto fail;                                                                              \
    }                                                                                         \
  } while (0)

int main(int argc, char **argv) {
  struct app *app = &APP;
  mbms_client_config *cfg = NULL;
  GSocket *sock = NULL;
  uint8_t ks[32];
  int rc = 1;
  g_mutex_init(&app->mki_lock);
  gst_init(&argc, &argv);
  if (parse_args(argc, argv, &app->opt) != 0) {
    usage(stderr);
    return 2;
  }
  if (parse_hex(app->opt.ks_naf_hex, ks, sizeof ks) != 0) {
    fprintf(stderr, "error: --ks-naf needs 64 hex digits\n");
    return 2;
  }
  int m = media_socket(app->opt.media, &sock);
  if (m == -1) {
    fprintf(stderr, "error: --media needs IPV4:PORT[%%IFACE]\n");
    explicit_bzero(ks, sizeof ks);
    return 2;
  }
  if (m != 0) {
    fprintf(stderr, "error: media socket %s: %s\n", app->opt.media, strerror(errno));
    explicit_bzero(ks, sizeof ks);
    return 1;
  }
  app->out = fopen(app->opt.out, "wb");
  if (!app->out) {
    fprintf(stderr, "error: %s: %s\n", app->opt.out, strerror(errno));
    explicit_bzero(ks, sizeof ks);
    g_object_unref(sock);
    return 1;
  }
  int built = build_pipeline(app, sock);
  /* udpsrc holds its own reference to the socket (and closes it); ours goes. */
  g_object_unref(sock);
  sock = NULL;
  if (built != 0) goto fail;

  CHECK(mbms_client_config_new(&cfg));
  if (app->opt.bmsc) CHECK(mbms_client_config_set_bmsc_url(cfg, app->opt.bmsc));
  if (app->opt.fqdn) CHECK(mbms_client_config_set_bmsc_fqdn(cfg, app->opt.fqdn));
  CHECK(mbms_client_config_set_gba(cfg, app->opt.btid, ks, sizeof ks));
  explicit_bzero(ks, sizeof ks);
  CHECK(mbms_client_config_set_listen(cfg, app->opt.listen));
  if (app->opt.state) CHECK(mbms_client_config_set_state_file(cfg, app->opt.state));
  for (int i = 0; i < app->opt.n_services; i++)
    CHECK(mbms_client_config_add_service(cfg, app->opt.services[i]));
  for (int i = 0; i < app->opt.n_joins; i++)
    CHECK(mbms_client_config_add_join(cfg, app->opt.joins[i]));
  for (int i = 0; i < app->opt.n_key_groups; i++)
    CHECK(mbms_client_config_add_key_group(cfg, app->opt.key_groups[i]));

  /* The pipeline runs first: no packet is lost while the registration is under way; until a
   * key is known, request-key is not answered and srtpdec drops the packets. */
  if (gst_element_set_state(app->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    fprintf(stderr, "error: the pipeline does not start\n");
    goto fail;
  }
  mbms_client *started = NULL;
  CHECK(mbms_client_start(cfg, on_event, app, &started));
  g_atomic_pointer_set(&app->client, started);
  mbms_client_config_free(cfg);
  cfg = NULL;
  uint16_t port = 0;
  CHECK(mbms_client_local_port(app->client, &port));
  printf("started mbms_keys %s, MIKEY port %u\n", mbms_version(), (unsigned)port);
  fflush(stdout);

  app->loop = g_main_loop_new(NULL, FALSE);
  g_unix_signal_add(SIGINT, on_signal, NULL);
  g_unix_signal_add(SIGTERM, on_signal, NULL);
  if (app->opt.duration > 0)
    g_timeout_add((guint)(app->opt.duration * 1000), on_timeout, NULL);
  g_main_loop_run(app->loop);
  rc = app->exit_code;
  goto done;

fail:
  rc = 1;
done:
  explicit_bzero(ks, sizeof ks);
  /* Streaming stops first (no request-key after this), then the client deregisters. */
  if (app->pipeline) {
    gst_element_set_state(app->pipeline, GST_STATE_NULL);
    GstStructure *stats = NULL;
    if (app->srtpdec) g_object_get(app->srtpdec, "stats", &stats, NULL);
    if (stats) {
      guint recv = 0, drop = 0;
      gst_structure_get_uint(stats, "recv-count", &recv);
      gst_structure_get_uint(stats, "recv-drop-count", &drop);
      fprintf(stderr, "srtpdec: received %u, dropped %u\n", recv, drop);
      gst_structure_free(stats);
    }
    gst_object_unref(app->pipeline);
  }
  if (sock) g_object_unref(sock);
  mbms_client *cl = g_atomic_pointer_get(&app->client);
  g_atomic_pointer_set(&app->client, NULL);
  mbms_client_free(cl);
  mbms_client_config_free(cfg);
  if (app->out && fclose(app->out) != 0) {
    fprintf(stderr, "error: closing %s: %s\n", app->opt.out, strerror(errno));
    rc = 1;
  }
  printf("done packets=%" G_GUINT64_FORMAT " bytes=%" G_GUINT64_FORMAT
         " key_requests=%" G_GUINT64_FORMAT " rekeys=%" G_GUINT64_FORMAT
         " unanswered=%" G_GUINT64_FORMAT " mtk_ready=%d msk_events=%d\n",
         app->packets, app->bytes, app->key_requests, app->rekeys, app->unanswered,
         g_atomic_int_get(&app->mtk_ready), g_atomic_int_get(&app->msk_events));
  fflush(stdout);
  if (app->loop) g_main_loop_unref(app->loop);
  return rc;
}
