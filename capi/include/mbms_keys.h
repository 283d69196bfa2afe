/*
 * mbms-keys: the C API of the UE side of 3GPP TS 33.246 MBMS key management.
 *
 * Level 1, sans-IO (mbms_receiver_*): the application owns its sockets, clock and event loop.
 * Level 2, driver (mbms_client_*): the library owns a thread, the sockets and the Key Request
 * client.
 *
 * Conventions: every function returns an mbms_result (MBMS_OK or an MBMS_ERR_* code, named by
 * mbms_result_name); every pointer argument is checked for NULL (MBMS_ERR_NULL); no panic
 * crosses the boundary (MBMS_ERR_PANIC); key material is written only into caller buffers,
 * which the caller should wipe after use; each function states its thread-safety.
 * See docs/c-api.md.
 */

#ifndef MBMS_KEYS_H
#define MBMS_KEYS_H

/* Generated from capi/src by cbindgen (capi/cbindgen.toml); do not edit. Regenerate with: MBMS_UPDATE_HEADER=1 cargo test -p mbms-keys-capi --test header */

#include <stddef.h>
#include <stdint.h>

/**
 * Services, groups and Key Groups a configuration holds at most (each `add` beyond is
 * `MBMS_ERR_INVALID`): the configuration comes from the application, but nothing it is handed
 * grows without bound.
 */
#define MAX_CONFIG_ITEMS 64

/**
 * A new MSK was stored (`key_domain_id`, `msk_id`, `seql`, `sequ`).
 */
#define MBMS_EVENT_MSK_INSTALLED 1

/**
 * The validity interval of a stored MSK changed (`key_domain_id`, `msk_id`, `seql`, `sequ`).
 */
#define MBMS_EVENT_MSK_UPDATED 2

/**
 * A stored MSK was deleted; its MTKs leave the key lookup table (`key_domain_id`, `msk_id`).
 */
#define MBMS_EVENT_MSK_INVALIDATED 3

/**
 * A verified MTK is ready; fetch it by `mki` or SSRC (`key_domain_id`, `msk_id`, `mtk_id`,
 * `mki`, `ssrc_count`).
 */
#define MBMS_EVENT_MTK_READY 4

/**
 * The MSK request procedure should be run for (`key_domain_id`, `msk_id`); `msk_id` with Key
 * Number 0 asks for the Key Group's current MSK.
 */
#define MBMS_EVENT_MSK_REQUEST_NEEDED 5

/**
 * The BM-SC refused an MSK request (`key_domain_id`, `msk_id`, `code`).
 */
#define MBMS_EVENT_MSK_REQUEST_FAILED 6

/**
 * A datagram was dropped (`discard_reason`; see `mbms_discard_reason_name`).
 */
#define MBMS_EVENT_DISCARDED 7

/**
 * SRTP policy AES_CM_128_HMAC_SHA1_80 (RFC 4568 §6.2.1).
 */
#define MBMS_SRTP_AES_CM_128_HMAC_SHA1_80 1

/**
 * SRTP policy AES_CM_128_HMAC_SHA1_32 (RFC 4568 §6.2.1).
 */
#define MBMS_SRTP_AES_CM_128_HMAC_SHA1_32 2

/**
 * \[CHOICE\] docs/c-api.md §5: the size an acknowledgement buffer must have: `mbms_receiver_handle_datagram` refuses a
 * smaller `ack_cap` before it looks at the datagram. An acknowledgement carries at most the B-TID
 * (255 octets) as an identity: 297 octets with the longest identities, well below this bound.
 */
#define MBMS_ACK_MAX_LEN 1024

/**
 * Length of the GBA_ME Ks_NAF, and of a state key, in octets.
 */
#define MBMS_KEY_LEN 32

/**
 * Length of an SRTP MKI (MSK ID ‖ MTK ID) in octets.
 */
#define MBMS_MKI_LEN 6

/**
 * A running client (opaque).
 */
typedef struct mbms_client mbms_client;

/**
 * The settings of a client, filled by the `mbms_client_config_*` setters.
 */
typedef struct mbms_client_config mbms_client_config;

/**
 * A sans-IO UE receiver (opaque). Create with `mbms_receiver_new` or `mbms_receiver_restore`,
 * release with `mbms_receiver_free`.
 */
typedef struct mbms_receiver mbms_receiver;

/**
 * The result of every function of the library: one of the `MBMS_*` codes. A plain integer, so
 * that a value the caller does not know is still a value.
 */
typedef uint32_t mbms_result;

/**
 * One event of a receiver. Fields that do not apply to `kind` are 0.
 */
typedef struct mbms_event {
  /**
   * One of the `MBMS_EVENT_*` values.
   */
  uint32_t kind;
  /**
   * The Key Domain ID, a 24-bit value (MCC ‖ MNC as on the wire).
   */
  uint32_t key_domain_id;
  /**
   * The MSK ID: Key Group (high 16 bits) ‖ Key Number (low 16 bits).
   */
  uint32_t msk_id;
  /**
   * MTK_READY: the MTK ID.
   */
  uint16_t mtk_id;
  /**
   * MSK_INSTALLED / MSK_UPDATED: SEQl, the lowest MTK ID the MSK may be used with.
   */
  uint16_t seql;
  /**
   * MSK_INSTALLED / MSK_UPDATED: SEQu, the highest MTK ID the MSK may be used with.
   */
  uint16_t sequ;
  /**
   * MSK_REQUEST_FAILED: the per-item code or HTTP status of the refusal.
   */
  uint16_t code;
  /**
   * DISCARDED: why, a number named by `mbms_discard_reason_name`.
   */
  uint32_t discard_reason;
  /**
   * MTK_READY: the SRTP MKI, MSK ID ‖ MTK ID.
   */
  uint8_t mki[6];
  /**
   * MTK_READY: the crypto sessions in the SRTP-ID map (0 for a download MTK).
   */
  uint32_t ssrc_count;
} mbms_event;

/**
 * Called on the library's thread for each receiver event (never for two events at once).
 * `ev` is valid only during the call. The callback may call `mbms_client_key_by_*` (the
 * event's MTK is already in the table) but not `mbms_client_free`.
 */
typedef void (*mbms_event_cb)(void *userdata, const struct mbms_event *ev);

/**
 * An SRTP master key found by a key lookup, in caller-owned memory. The caller should wipe it
 * (`explicit_bzero`) once the key is handed to its SRTP library.
 */
typedef struct mbms_srtp_key {
  /**
   * The SRTP master key (the MTK), in the first `master_key_len` octets.
   */
  uint8_t master_key[32];
  /**
   * Octets of `master_key` in use: 16 (AES-128).
   */
  size_t master_key_len;
  /**
   * The SRTP master salt, in the first `master_salt_len` octets.
   */
  uint8_t master_salt[14];
  /**
   * Octets of `master_salt` in use: 14, or 0 when the MTK message carried no salt.
   */
  size_t master_salt_len;
  /**
   * The SRTP MKI (MSK ID ‖ MTK ID), in the first `mki_len` octets.
   */
  uint8_t mki[6];
  /**
   * Octets of `mki` in use: 6.
   */
  size_t mki_len;
  /**
   * The SSRC of the crypto session from the SRTP-ID map: the one asked for by SSRC, the first
   * of the map by MKI; 0 when the map is empty.
   */
  uint32_t ssrc;
  /**
   * The rollover counter of that crypto session (0 when the map is empty).
   */
  uint32_t roc;
  /**
   * The SRTP policy, one of the `MBMS_SRTP_*` values; 0 when unknown or none.
   */
  uint32_t policy;
  /**
   * The Key Domain ID (24-bit value) of the MSK that protected the MTK.
   */
  uint32_t key_domain_id;
  /**
   * The MSK ID of that MSK: Key Group (high 16 bits) ‖ Key Number (low 16 bits).
   */
  uint32_t msk_id;
  /**
   * The MTK ID.
   */
  uint16_t mtk_id;
} mbms_srtp_key;

/**
 * Success.
 */
#define MBMS_OK 0

/**
 * A required pointer argument is NULL.
 */
#define MBMS_ERR_NULL 1

/**
 * An argument is malformed (length, UTF-8, syntax).
 */
#define MBMS_ERR_INVALID 2

/**
 * The caller's buffer is too small; `*out_len` tells the size needed.
 */
#define MBMS_ERR_BUFFER_TOO_SMALL 3

/**
 * A state blob does not open: sealed under another key, corrupt, or of another version.
 */
#define MBMS_ERR_STATE 4

/**
 * No such key, no queued event, or no pending timeout.
 */
#define MBMS_ERR_NOT_FOUND 5

/**
 * An internal panic was caught; the handle may be in an inconsistent state and should be freed.
 */
#define MBMS_ERR_PANIC 6

/**
 * A socket, thread or HTTP failure (driver level).
 */
#define MBMS_ERR_IO 7

/**
 * The BM-SC refused (HTTP 4xx) (driver level).
 */
#define MBMS_ERR_REFUSED 8

/**
 * The GBA keys are expired or unusable.
 */
#define MBMS_ERR_KEYS 9

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * Creates an empty client configuration: listen on `0.0.0.0:2269`, no BM-SC, no GBA keys, no
 * services, no groups, no state file. Free it with `mbms_client_config_free`.
 *
 * Errors: `MBMS_ERR_NULL` when `out` is NULL.
 *
 * Thread-safety: a configuration is used by one thread at a time.
 *
 * # Safety
 * `out` is NULL or writable for one pointer.
 */
mbms_result mbms_client_config_new(struct mbms_client_config **out);

/**
 * Sets the BM-SC's Key Request function, `http://host:port` (registration, MSK requests,
 * deregistration). Without it the client is push only. The BM-SC FQDN defaults to its host.
 *
 * Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for text that is not UTF-8 or not an `http://`
 * URL with a host.
 *
 * Thread-safety: a configuration is used by one thread at a time.
 *
 * # Safety
 * `c` is NULL or a live configuration; `url` is NULL or a NUL-terminated string.
 */
mbms_result mbms_client_config_set_bmsc_url(struct mbms_client_config *c, const char *url);

/**
 * Sets the BM-SC FQDN (the MIKEY IDi of the MUK ID) when it is not the host of the URL.
 *
 * Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for an empty or non-UTF-8 name.
 *
 * Thread-safety: a configuration is used by one thread at a time.
 *
 * # Safety
 * `c` is NULL or a live configuration; `fqdn` is NULL or a NUL-terminated string.
 */
mbms_result mbms_client_config_set_bmsc_fqdn(struct mbms_client_config *c, const char *fqdn);

/**
 * Sets the GBA keys (GBA_ME): the B-TID and Ks_NAF for the BM-SC (`len` = 32). The MUK and the
 * Digest password are derived inside; the key is copied and the copy is wiped on free.
 *
 * Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for a B-TID that is not one, or `len` other
 * than 32.
 *
 * Thread-safety: a configuration is used by one thread at a time.
 *
 * # Safety
 * `c` is NULL or a live configuration; `btid` is NULL or a NUL-terminated string; `ks_naf` is
 * NULL or points to `len` readable octets.
 */
mbms_result mbms_client_config_set_gba(struct mbms_client_config *c,
                                       const char *btid,
                                       const uint8_t *ks_naf,
                                       size_t len);

/**
 * Sets the local address MIKEY pushes arrive on, e.g. `"0.0.0.0:2269"` (port 0: any free
 * port, see `mbms_client_local_port`).
 *
 * Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for text that is not `IP:PORT`.
 *
 * Thread-safety: a configuration is used by one thread at a time.
 *
 * # Safety
 * `c` is NULL or a live configuration; `addr` is NULL or a NUL-terminated string.
 */
mbms_result mbms_client_config_set_listen(struct mbms_client_config *c, const char *addr);

/**
 * Adds an MBMS user service to register to (at most 64).
 *
 * Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for an empty or non-UTF-8 id, or one too many.
 *
 * Thread-safety: a configuration is used by one thread at a time.
 *
 * # Safety
 * `c` is NULL or a live configuration; `service_id` is NULL or a NUL-terminated string.
 */
mbms_result mbms_client_config_add_service(struct mbms_client_config *c, const char *service_id);

/**
 * Adds a multicast group carrying MTK messages, `GROUP[:PORT][%IFACE]` as `mbms-keys ue
 * --join` (PORT defaults to the listen port; IFACE is the interface address for IPv4, e.g.
 * `239.255.0.1:5000%127.0.0.1`, its name or index for IPv6, written `[GROUP]:PORT%IFACE`).
 * At most 64.
 *
 * Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for another syntax, or one too many.
 *
 * Thread-safety: a configuration is used by one thread at a time.
 *
 * # Safety
 * `c` is NULL or a live configuration; `group` is NULL or a NUL-terminated string.
 */
mbms_result mbms_client_config_add_join(struct mbms_client_config *c, const char *group);

/**
 * Adds a Key Group of the UE's services, `KD:GROUP` (6 hex digits, a colon, 1 to 4 hex digits,
 * e.g. `"00f110:0001"`), as `mbms-keys ue --key-group`: an MTK message under a missing MSK of
 * that group makes the client request the MSK. Groups of verified MSK messages are learned
 * without it. At most 64.
 *
 * Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for another syntax, or one too many.
 *
 * Thread-safety: a configuration is used by one thread at a time.
 *
 * # Safety
 * `c` is NULL or a live configuration; `key_group` is NULL or a NUL-terminated string.
 */
mbms_result mbms_client_config_add_key_group(struct mbms_client_config *c, const char *key_group);

/**
 * Sets the MGV-S state file: restored at start, written when keys change and at free. It is
 * sealed under a key kept next to it in `<path>.key` (created with mode 0600).
 *
 * Errors: `MBMS_ERR_NULL`; `MBMS_ERR_INVALID` for an empty or non-UTF-8 path.
 *
 * Thread-safety: a configuration is used by one thread at a time.
 *
 * # Safety
 * `c` is NULL or a live configuration; `path` is NULL or a NUL-terminated string.
 */
mbms_result mbms_client_config_set_state_file(struct mbms_client_config *c, const char *path);

/**
 * Frees a configuration (its Ks_NAF copy is wiped). NULL is a no-op. A client started from it
 * keeps its own copy.
 *
 * Thread-safety: not with any other use of the same configuration.
 *
 * # Safety
 * `c` is NULL or a live configuration from `mbms_client_config_new`, not used afterwards.
 */
void mbms_client_config_free(struct mbms_client_config *c);

/**
 * Starts a client from `c` (copied: `c` may be freed afterwards): binds the MIKEY socket,
 * joins the groups, restores the state file, starts the library's thread, and registers to
 * the configured services over HTTP Digest (waiting for the answer, at most about 10 s). From
 * then on `cb` (may be NULL) is called on the library's thread with each event, `userdata`
 * passed through untouched; the first calls may come before this function returns.
 *
 * Errors: `MBMS_ERR_NULL` (`c` or `out`); `MBMS_ERR_KEYS` without GBA keys;
 * `MBMS_ERR_INVALID` without a BM-SC FQDN (neither set nor a URL); `MBMS_ERR_IO` for a socket,
 * group, thread or HTTP failure; `MBMS_ERR_REFUSED` when the BM-SC refused the registration
 * (HTTP 4xx, Digest credentials, or no service accepted); `MBMS_ERR_STATE` for a state file
 * that does not open. On error `*out` is NULL and no thread runs.
 *
 * Thread-safety: any thread. `cb` and `userdata` must be usable from the library's thread.
 *
 * # Safety
 * `c` is NULL or a live configuration; `out` is NULL or writable for one pointer; `cb`, if not
 * NULL, is a function of this signature that may be called until `mbms_client_free` returns.
 */
mbms_result mbms_client_start(const struct mbms_client_config *c,
                              mbms_event_cb cb,
                              void *userdata,
                              struct mbms_client **out);

/**
 * The UDP port the MIKEY socket is bound to (useful after a listen port of 0).
 *
 * Errors: `MBMS_ERR_NULL`.
 *
 * Thread-safety: any thread, concurrently with the other client functions but `_free`.
 *
 * # Safety
 * `cl` is NULL or a live client; `port` is NULL or writable.
 */
mbms_result mbms_client_local_port(const struct mbms_client *cl, uint16_t *port);

/**
 * The MTK whose SRTP MKI is `mki` (MSK ID ‖ MTK ID, 6 octets), as `srtpdec`'s `request-key`
 * needs, from the MTKs of the MTK_READY events so far (the MTKs of invalidated MSKs are gone).
 * `out->ssrc` / `out->roc` are the first crypto session of its SRTP-ID map.
 *
 * Errors: `MBMS_ERR_NULL`; `MBMS_ERR_NOT_FOUND` when no such MTK is held (also for a length
 * other than 6). `*out` is written only on success.
 *
 * Thread-safety: any thread, concurrently with the other client functions but `_free`,
 * including from inside the event callback.
 *
 * # Safety
 * `cl` is NULL or a live client; `mki` is NULL or points to `mki_len` readable octets; `out`
 * is NULL or writable for one `mbms_srtp_key`.
 */
mbms_result mbms_client_key_by_mki(const struct mbms_client *cl,
                                   const uint8_t *mki,
                                   size_t mki_len,
                                   struct mbms_srtp_key *out);

/**
 * The newest MTK whose SRTP-ID map names `ssrc`, with that session's ROC (as announced in the
 * MTK message).
 *
 * Errors: `MBMS_ERR_NULL`; `MBMS_ERR_NOT_FOUND` when no held MTK names `ssrc`. `*out` is
 * written only on success.
 *
 * Thread-safety: any thread, concurrently with the other client functions but `_free`,
 * including from inside the event callback.
 *
 * # Safety
 * `cl` is NULL or a live client; `out` is NULL or writable for one `mbms_srtp_key`.
 */
mbms_result mbms_client_key_by_ssrc(const struct mbms_client *cl,
                                    uint32_t ssrc,
                                    struct mbms_srtp_key *out);

/**
 * Stops the client: deregisters from its services (waiting at most 5 s for the answer), stops
 * the driver (which writes the state file), joins the library's thread (no callback runs after
 * this returns), and wipes the MTK table. NULL is a no-op. Called from inside the callback it
 * only asks the thread to stop (it cannot wait for itself); the handle is then freed.
 *
 * Thread-safety: not concurrently with any other use of the same client.
 *
 * # Safety
 * `cl` is NULL or a live client from `mbms_client_start`, not used afterwards.
 */
void mbms_client_free(struct mbms_client *cl);

/**
 * The name of a discard reason of an `MBMS_EVENT_DISCARDED` event: `"malformed"`,
 * `"bad_mac"`, `"replay"`, ... (1 = malformed, 2 = not_profile_message, 3 = unknown_muk,
 * 4 = replay, 5 = bad_mac, 6 = bad_key_data, 7 = unknown_msk, 8 = mtk_id_outside_interval,
 * 9 = mtk_id_not_newer, 10 = unexpected_acknowledgement, 11 = store_full,
 * 12 = unknown_key_group); `"unknown"` for another number. A static NUL-terminated string,
 * never NULL.
 *
 * Thread-safety: safe to call from any thread at any time.
 */
const char *mbms_discard_reason_name(uint32_t reason);

/**
 * Creates a receiver holding the MUK of one GBA_ME bootstrapping: MUK = Ks_NAF, MUK ID = IDi ‖
 * IDr = `bmsc_fqdn` ‖ `btid` (docs/profile.md §1), exactly as the Rust UE derives them. No MSK
 * is held yet.
 *
 * - `bmsc_fqdn`: the BM-SC FQDN (NUL-terminated UTF-8, 1 to 255 octets).
 * - `btid`: the B-TID (NUL-terminated, printable ASCII with an '@', at most 255 octets).
 * - `ks_naf`, `ks_naf_len`: the Ks_NAF for the BM-SC's NAF_Id, `MBMS_KEY_LEN` (32) octets. The
 *   library keeps its own copy (wiped when the receiver is freed); the caller should wipe its
 *   own.
 * - `out`: receives the new receiver, to be released with `mbms_receiver_free`.
 *
 * Errors: `MBMS_ERR_NULL` (a pointer is NULL), `MBMS_ERR_INVALID` (FQDN empty or too long,
 * B-TID malformed, text not UTF-8, `ks_naf_len` not 32), `MBMS_ERR_PANIC`. On error `*out` is
 * not written.
 *
 * Thread-safety: safe to call from any thread; receivers are independent of each other.
 *
 * # Safety
 * The strings are NUL-terminated, `ks_naf` holds `ks_naf_len` readable octets, `out` is
 * writable.
 */
mbms_result mbms_receiver_new(const char *bmsc_fqdn,
                              const char *btid,
                              const uint8_t *ks_naf,
                              size_t ks_naf_len,
                              struct mbms_receiver **out);

/**
 * Creates a receiver from a state blob made by `mbms_receiver_save` (MUKs with their counters,
 * MSKs with their intervals and counters), then installs the MUK of these GBA keys as the
 * current one (as `mbms_receiver_new`; a MUK of the blob with another ID stays as the previous
 * one). The MTK lookup table starts empty: MTKs are not saved.
 *
 * - `state_key`, `state_key_len`: the 32-octet key the blob was sealed under.
 * - `blob`, `blob_len`: the blob.
 *
 * Errors: `MBMS_ERR_NULL`, `MBMS_ERR_INVALID` (as `mbms_receiver_new`, or `state_key_len` not
 * 32), `MBMS_ERR_STATE` (the blob is sealed under another key, altered, truncated, of another
 * format version, or inconsistent), `MBMS_ERR_PANIC`. On error `*out` is not written.
 *
 * Thread-safety: safe to call from any thread.
 *
 * # Safety
 * As `mbms_receiver_new`; `state_key` and `blob` hold their lengths of readable octets.
 */
mbms_result mbms_receiver_restore(const char *bmsc_fqdn,
                                  const char *btid,
                                  const uint8_t *ks_naf,
                                  size_t ks_naf_len,
                                  const uint8_t *state_key,
                                  size_t state_key_len,
                                  const uint8_t *blob,
                                  size_t blob_len,
                                  struct mbms_receiver **out);

/**
 * Seals the receiver's whole key state (MUKs, counters, MSKs) under `state_key` into `buf`.
 * Save after every call that changed state (an accepted MSK or MTK message) and restore with
 * `mbms_receiver_restore`: counters never go back across a restart.
 *
 * - `state_key`, `state_key_len`: a 32-octet key the application keeps secret (e.g. random,
 *   in a file of mode 0600).
 * - `buf`, `cap`: the caller's buffer; `out_len` receives the blob's length.
 *
 * Errors: `MBMS_ERR_NULL` (`r`, `state_key` or `out_len` NULL, or `buf` NULL with `cap` > 0),
 * `MBMS_ERR_INVALID` (`state_key_len` not 32), `MBMS_ERR_BUFFER_TOO_SMALL` (`*out_len` is the
 * size needed; nothing is written to `buf`; call again with a larger buffer), `MBMS_ERR_PANIC`.
 *
 * Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
 *
 * # Safety
 * `r` is a live receiver; `state_key` holds `state_key_len` octets; `buf` holds `cap` writable
 * octets; `out_len` is writable.
 */
mbms_result mbms_receiver_save(const struct mbms_receiver *r,
                               const uint8_t *state_key,
                               size_t state_key_len,
                               uint8_t *buf,
                               size_t cap,
                               size_t *out_len);

/**
 * Applies one datagram received on the MIKEY port at the application's time `now_ms`
 * (a monotonic clock in milliseconds, any origin, non-decreasing; an earlier value counts as
 * the latest one). Every outcome, including a discarded datagram, is queued as an event.
 *
 * - `datagram`, `len`: the datagram (NULL allowed when `len` is 0).
 * - `ack`, `ack_cap`: the caller's buffer for the acknowledgement; `ack_cap` must be at least
 *   `MBMS_ACK_MAX_LEN`.
 * - `ack_len`: receives the acknowledgement's length, 0 when there is nothing to send. Send a
 *   non-empty acknowledgement back to the datagram's source address and port.
 *
 * A malformed, forged, replayed or otherwise refused datagram is not an error: the result is
 * `MBMS_OK`, `*ack_len` is 0, and an `MBMS_EVENT_DISCARDED` event names the reason.
 *
 * Errors: `MBMS_ERR_NULL` (`r`, `ack` or `ack_len` NULL, or `datagram` NULL with `len` > 0),
 * `MBMS_ERR_BUFFER_TOO_SMALL` (`ack_cap` below `MBMS_ACK_MAX_LEN`: `*ack_len` is set to
 * `MBMS_ACK_MAX_LEN` and the datagram is not looked at), `MBMS_ERR_PANIC`.
 *
 * Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
 *
 * # Safety
 * `r` is a live receiver; `datagram` holds `len` readable octets; `ack` holds `ack_cap` writable
 * octets; `ack_len` is writable.
 */
mbms_result mbms_receiver_handle_datagram(struct mbms_receiver *r,
                                          uint64_t now_ms,
                                          const uint8_t *datagram,
                                          size_t len,
                                          uint8_t *ack,
                                          size_t ack_cap,
                                          size_t *ack_len);

/**
 * Takes the oldest queued event into `*out`. Drain after every call that may queue events
 * (handle_datagram, handle_timeout, msk_response): at most 1024 are kept, and when the queue is
 * full a discard notice gives way to a key event.
 *
 * Errors: `MBMS_ERR_NULL`, `MBMS_ERR_NOT_FOUND` (no event queued; `*out` not written),
 * `MBMS_ERR_PANIC`.
 *
 * Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
 *
 * # Safety
 * `r` is a live receiver; `out` is writable.
 */
mbms_result mbms_receiver_poll_event(struct mbms_receiver *r, struct mbms_event *out);

/**
 * The application time (same clock as `now_ms`) at which `mbms_receiver_handle_timeout` should
 * next be called: the end of an MSK request back-off.
 *
 * Errors: `MBMS_ERR_NULL`, `MBMS_ERR_NOT_FOUND` (no timer pending; `*at_ms` not written),
 * `MBMS_ERR_PANIC`.
 *
 * Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
 *
 * # Safety
 * `r` is a live receiver; `at_ms` is writable.
 */
mbms_result mbms_receiver_next_timeout(const struct mbms_receiver *r, uint64_t *at_ms);

/**
 * Runs the timers due at `now_ms` (queues `MBMS_EVENT_MSK_REQUEST_NEEDED` for each expired
 * back-off).
 *
 * Errors: `MBMS_ERR_NULL`, `MBMS_ERR_PANIC`.
 *
 * Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
 *
 * # Safety
 * `r` is a live receiver.
 */
mbms_result mbms_receiver_handle_timeout(struct mbms_receiver *r, uint64_t now_ms);

/**
 * Tells the receiver the BM-SC's answer to an MSK request it asked for
 * (`MBMS_EVENT_MSK_REQUEST_NEEDED`): the per-item status `code` (200 changes nothing; any other
 * ends the request and queues `MBMS_EVENT_MSK_REQUEST_FAILED`; that MSK ID is asked for again
 * only after a verified MSK message of its Key Group).
 *
 * Errors: `MBMS_ERR_NULL`, `MBMS_ERR_INVALID` (`key_domain_id` above 24 bits),
 * `MBMS_ERR_PANIC`.
 *
 * Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
 *
 * # Safety
 * `r` is a live receiver.
 */
mbms_result mbms_receiver_msk_response(struct mbms_receiver *r,
                                       uint32_t key_domain_id,
                                       uint32_t msk_id,
                                       uint16_t code);

/**
 * Looks up the MTK whose SRTP MKI (MSK ID ‖ MTK ID, 6 octets) is `mki` among the MTKs this
 * receiver delivered (the newest 64, without those of invalidated MSKs) and writes it to
 * `*out`: what an SRTP decoder needs when a packet names an unknown master key. The caller
 * should wipe `*out` after use.
 *
 * Errors: `MBMS_ERR_NULL`, `MBMS_ERR_INVALID` (`mki_len` not 6), `MBMS_ERR_NOT_FOUND` (no such
 * MTK; `*out` not written), `MBMS_ERR_PANIC`.
 *
 * Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
 *
 * # Safety
 * `r` is a live receiver; `mki` holds `mki_len` readable octets; `out` is writable.
 */
mbms_result mbms_receiver_key_by_mki(const struct mbms_receiver *r,
                                     const uint8_t *mki,
                                     size_t mki_len,
                                     struct mbms_srtp_key *out);

/**
 * Looks up the newest MTK whose SRTP-ID map names `ssrc` and writes it to `*out`, with that
 * crypto session's ROC. The caller should wipe `*out` after use.
 *
 * Errors: `MBMS_ERR_NULL`, `MBMS_ERR_NOT_FOUND` (no MTK for that SSRC; `*out` not written),
 * `MBMS_ERR_PANIC`.
 *
 * Thread-safety: not thread-safe: call the functions of one receiver from one thread at a time.
 *
 * # Safety
 * `r` is a live receiver; `out` is writable.
 */
mbms_result mbms_receiver_key_by_ssrc(const struct mbms_receiver *r,
                                      uint32_t ssrc,
                                      struct mbms_srtp_key *out);

/**
 * Releases a receiver: its MUKs, MSKs and MTKs are wiped. NULL is a no-op. Using `r` after
 * this call, or freeing it twice, is undefined behaviour.
 *
 * Thread-safety: not thread-safe: no other call on this receiver may run or follow.
 *
 * # Safety
 * `r` is NULL or a live receiver not used afterwards.
 */
void mbms_receiver_free(struct mbms_receiver *r);

/**
 * The name of a result code as a static NUL-terminated string: `"MBMS_OK"`,
 * `"MBMS_ERR_NULL"`, ...; `"MBMS_ERR_UNKNOWN"` for a value that is not a code. Never NULL; the
 * caller must not free it.
 *
 * Thread-safety: safe to call from any thread at any time.
 */
const char *mbms_result_name(mbms_result r);

/**
 * The library version (`"0.1.0"`), a static NUL-terminated string. Never NULL; the caller must
 * not free it.
 *
 * Thread-safety: safe to call from any thread at any time.
 */
const char *mbms_version(void);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* MBMS_KEYS_H */
