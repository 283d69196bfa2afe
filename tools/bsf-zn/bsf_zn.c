/*
 * bsf_zn: a freeDiameter extension that answers Zn Bootstrapping-Info-Requests (TS 29.109,
 * Diameter application 16777220, command 310) from a subscriber file, so that Debian's
 * freeDiameterd can play the BSF in the mbms-keys labs and interop tests.
 *
 * Subscriber file (the argument after ':' in LoadExtension), one entry per line:
 *
 *     B-TID IMPI KS_HEX64 RAND_HEX32 [gba_u] [not_authorized] [expires=UNIX_SECONDS]
 *     @lifetime SECONDS        (default key lifetime for entries without expires=; 3600)
 *     # comment
 *
 * For a BIR naming a known B-TID, the answer carries
 *     ME-Key-Material   = Ks_NAF (GBA_ME) or Ks_ext_NAF (gba_u entries)
 *                       = KDF(Ks, 0x01 || "gba-me" || RAND || IMPI || NAF_Id)  (TS 33.220 Annex B)
 *     UICC-Key-Material = Ks_int_NAF (gba_u entries, only when the request says
 *                         GBA_U-Awareness-Indicator = YES)
 *     User-Name = IMPI, Key-ExpiryTime, BootstrapInfoCreationTime, GBA-Type = 3G (0),
 * where NAF_Id is the request's NAF-Id AVP, octet for octet. An unknown B-TID is answered with
 * Experimental-Result 5403 (DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID), a not_authorized
 * entry with 5402, a request without B-TID or NAF-Id with 5005 (DIAMETER_MISSING_AVP), an
 * oversized value with 5004 (DIAMETER_INVALID_AVP_VALUE).
 *
 * The table is read once at load and is read-only afterwards, so the dispatch threads share it
 * without locks. Every length is checked before it is copied.
 */

#include <freeDiameter/extension.h>
#include <gnutls/crypto.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VENDOR_3GPP 10415
#define APP_ZN 16777220
#define CMD_BOOTSTRAPPING_INFO 310

#define MAX_BTID 255         /* longest B-TID accepted, in the file and on the wire */
#define MAX_IMPI 255         /* longest IMPI in the file */
#define MAX_NAF_ID 1024      /* longest NAF-Id accepted on the wire */
#define MAX_LINE 2048        /* longest subscriber file line */
#define MAX_SUBSCRIBERS 10000000
#define NTP_UNIX_OFFSET 2208988800ULL

struct subscriber {
	char btid[MAX_BTID + 1];
	size_t btid_len;
	char impi[MAX_IMPI + 1];
	size_t impi_len;
	unsigned char ks[32];
	unsigned char rand[16];
	int gba_u;
	int not_authorized;
	uint64_t expires; /* Unix seconds */
};

static struct subscriber *subs;
static size_t nsubs;
static uint64_t loaded_at;

static struct dict_object *d_vendor, *d_app, *d_bir, *d_bia;
static struct dict_object *d_btid, *d_naf_id, *d_gba_u_aware, *d_me_key, *d_uicc_key,
	*d_key_expiry, *d_creation_time, *d_gba_type;
static struct dict_object *d_user_name, *d_vsai, *d_vendor_id, *d_auth_app_id, *d_exp_result,
	*d_exp_result_code;
static struct disp_hdl *bir_hdl;

/* ---------------------------------------------------------------------------------------- */
/* Subscriber file                                                                          */

static int hexval(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Decodes exactly `n` octets of hex from `s` (which must be 2n characters long). */
static int unhex(const char *s, unsigned char *out, size_t n)
{
	if (strlen(s) != 2 * n) return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0) return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!*s || !isdigit((unsigned char)*s)) return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end) return -1;
	*out = v;
	return 0;
}

static int by_btid(const void *a, const void *b)
{
	const struct subscriber *x = a, *y = b;
	size_t n = x->btid_len < y->btid_len ? x->btid_len : y->btid_len;
	int c = memcmp(x->btid, y->btid, n);
	if (c) return c;
	return (x->btid_len > y->btid_len) - (x->btid_len < y->btid_len);
}

static int load_subscribers(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		LOG_E("bsf_zn: cannot open subscriber file '%s': %s", path, strerror(errno));
		return EINVAL;
	}
	char line[MAX_LINE + 2];
	size_t cap = 0, lineno = 0;
	uint64_t lifetime = 3600;
	int ret = 0;
	struct subscriber *s;

	while (fgets(line, sizeof line, f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof line - 1 && line[len - 1] != '\n') {
			LOG_E("bsf_zn: %s:%zu: line longer than %d characters", path, lineno, MAX_LINE);
			ret = EINVAL;
			break;
		}
		char *save = NULL;
		char *tok = strtok_r(line, " \t\r\n", &save);
		if (!tok || tok[0] == '#') continue;
		if (!strcmp(tok, "@lifetime")) {
			char *v = strtok_r(NULL, " \t\r\n", &save);
			if (!v || parse_u64(v, &lifetime) || lifetime > 10ULL * 365 * 86400) {
				LOG_E("bsf_zn: %s:%zu: @lifetime needs seconds", path, lineno);
				ret = EINVAL;
				break;
			}
			continue;
		}
		if (nsubs == cap) {
			if (cap >= MAX_SUBSCRIBERS) {
				LOG_E("bsf_zn: %s: more than %d subscribers", path, MAX_SUBSCRIBERS);
				ret = EINVAL;
				break;
			}
			size_t ncap = cap ? cap * 2 : 64;
			struct subscriber *n = realloc(subs, ncap * sizeof *n);
			if (!n) {
				ret = ENOMEM;
				break;
			}
			subs = n;
			cap = ncap;
		}
		s = &subs[nsubs];
		memset(s, 0, sizeof *s);
		char *impi = strtok_r(NULL, " \t\r\n", &save);
		char *ks = impi ? strtok_r(NULL, " \t\r\n", &save) : NULL;
		char *rnd = ks ? strtok_r(NULL, " \t\r\n", &save) : NULL;
		if (!rnd || strlen(tok) > MAX_BTID || strlen(impi) > MAX_IMPI || unhex(ks, s->ks, 32)
		    || unhex(rnd, s->rand, 16)) {
			LOG_E("bsf_zn: %s:%zu: expected 'B-TID IMPI KS_HEX64 RAND_HEX32 [options]'", path,
			      lineno);
			ret = EINVAL;
			break;
		}
		s->btid_len = strlen(tok);
		memcpy(s->btid, tok, s->btid_len);
		s->impi_len = strlen(impi);
		memcpy(s->impi, impi, s->impi_len);
		s->expires = loaded_at + lifetime;
		char *opt;
		while ((opt = strtok_r(NULL, " \t\r\n", &save))) {
			if (!strcmp(opt, "gba_u")) {
				s->gba_u = 1;
			} else if (!strcmp(opt, "not_authorized")) {
				s->not_authorized = 1;
			} else if (!strncmp(opt, "expires=", 8) && !parse_u64(opt + 8, &s->expires)) {
			} else {
				LOG_E("bsf_zn: %s:%zu: unknown option '%s'", path, lineno, opt);
				ret = EINVAL;
				break;
			}
		}
		if (ret) break;
		nsubs++;
	}
	if (!ret && ferror(f)) ret = EIO;
	fclose(f);
	/* wipe the line buffer: it held key material */
	memset(line, 0, sizeof line);
	if (ret) return ret;
	qsort(subs, nsubs, sizeof *subs, by_btid);
	for (size_t i = 1; i < nsubs; i++) {
		if (!by_btid(&subs[i - 1], &subs[i])) {
			LOG_E("bsf_zn: %s: B-TID '%s' appears twice", path, subs[i].btid);
			return EINVAL;
		}
	}
	LOG_N("bsf_zn: %zu subscribers loaded from '%s'", nsubs, path);
	return 0;
}

static const struct subscriber *find_subscriber(const uint8_t *btid, size_t len)
{
	size_t lo = 0, hi = nsubs;
	if (len > MAX_BTID) return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct subscriber *s = &subs[mid];
		size_t n = s->btid_len < len ? s->btid_len : len;
		int c = memcmp(s->btid, btid, n);
		if (!c) c = (s->btid_len > len) - (s->btid_len < len);
		if (!c) return s;
		if (c < 0) lo = mid + 1;
		else hi = mid;
	}
	return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* TS 33.220 Annex B key derivation                                                         */

/* Appends P || L (L = 2-octet big-endian length of P) at *pos in buf (size cap). */
static int kdf_param(unsigned char *buf, size_t cap, size_t *pos, const void *p, size_t len)
{
	if (len > 0xffff || cap - *pos < len + 2) return -1;
	memcpy(buf + *pos, p, len);
	*pos += len;
	buf[(*pos)++] = (unsigned char)(len >> 8);
	buf[(*pos)++] = (unsigned char)len;
	return 0;
}

/* out = HMAC-SHA-256(Ks, 0x01 || label || L || RAND || L || IMPI || L || NAF_Id || L). */
static int derive(const struct subscriber *s, const char *label, const uint8_t *naf_id,
		  size_t naf_len, unsigned char out[32])
{
	unsigned char buf[1 + (8 + 2) + (16 + 2) + (MAX_IMPI + 2) + (MAX_NAF_ID + 2)];
	size_t pos = 0;
	int ret = -1;
	buf[pos++] = 0x01;
	if (kdf_param(buf, sizeof buf, &pos, label, strlen(label))
	    || kdf_param(buf, sizeof buf, &pos, s->rand, sizeof s->rand)
	    || kdf_param(buf, sizeof buf, &pos, s->impi, s->impi_len)
	    || kdf_param(buf, sizeof buf, &pos, naf_id, naf_len))
		goto out;
	if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, s->ks, sizeof s->ks, buf, pos, out) != 0) goto out;
	ret = 0;
out:
	memset(buf, 0, sizeof buf);
	return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* Answer building                                                                          */

static int add_os(msg_or_avp *parent, struct dict_object *model, const void *data, size_t len)
{
	struct avp *a = NULL;
	union avp_value v;
	v.os.data = (uint8_t *)data;
	v.os.len = len;
	CHECK_FCT(fd_msg_avp_new(model, 0, &a));
	CHECK_FCT(fd_msg_avp_setvalue(a, &v));
	CHECK_FCT(fd_msg_avp_add(parent, MSG_BRW_LAST_CHILD, a));
	return 0;
}

static int add_u32(msg_or_avp *parent, struct dict_object *model, uint32_t value)
{
	struct avp *a = NULL;
	union avp_value v;
	v.u32 = value;
	CHECK_FCT(fd_msg_avp_new(model, 0, &a));
	CHECK_FCT(fd_msg_avp_setvalue(a, &v));
	CHECK_FCT(fd_msg_avp_add(parent, MSG_BRW_LAST_CHILD, a));
	return 0;
}

static int add_i32(msg_or_avp *parent, struct dict_object *model, int32_t value)
{
	struct avp *a = NULL;
	union avp_value v;
	v.i32 = value;
	CHECK_FCT(fd_msg_avp_new(model, 0, &a));
	CHECK_FCT(fd_msg_avp_setvalue(a, &v));
	CHECK_FCT(fd_msg_avp_add(parent, MSG_BRW_LAST_CHILD, a));
	return 0;
}

/* A Diameter Time value: NTP seconds, 4 octets big-endian (wraps in 2036 per RFC 6733 4.3.1). */
static int add_time(msg_or_avp *parent, struct dict_object *model, uint64_t unix_secs)
{
	uint32_t ntp = (uint32_t)(unix_secs + NTP_UNIX_OFFSET);
	unsigned char b[4] = { ntp >> 24, ntp >> 16, ntp >> 8, ntp };
	return add_os(parent, model, b, sizeof b);
}

static int add_vsai(struct msg *ans)
{
	struct avp *g = NULL;
	CHECK_FCT(fd_msg_avp_new(d_vsai, 0, &g));
	CHECK_FCT(add_u32(g, d_vendor_id, VENDOR_3GPP));
	CHECK_FCT(add_u32(g, d_auth_app_id, APP_ZN));
	CHECK_FCT(fd_msg_avp_add(ans, MSG_BRW_LAST_CHILD, g));
	return 0;
}

static int add_experimental(struct msg *ans, uint32_t code)
{
	struct avp *g = NULL;
	CHECK_FCT(fd_msg_add_origin(ans, 0));
	CHECK_FCT(fd_msg_avp_new(d_exp_result, 0, &g));
	CHECK_FCT(add_u32(g, d_vendor_id, VENDOR_3GPP));
	CHECK_FCT(add_u32(g, d_exp_result_code, code));
	CHECK_FCT(fd_msg_avp_add(ans, MSG_BRW_LAST_CHILD, g));
	return 0;
}

/* The octet string of the first top-level AVP of `model` in `msg`: 0 and *data NULL when
 * absent, -1 when present without a value (an AVP the parser could not type). */
static int find_os(struct msg *msg, struct dict_object *model, uint8_t **data, size_t *len)
{
	struct avp *a = NULL;
	struct avp_hdr *h = NULL;
	*data = NULL;
	*len = 0;
	if (fd_msg_search_avp(msg, model, &a) != 0 || !a) return 0;
	if (fd_msg_avp_hdr(a, &h) != 0 || !h || !h->avp_value) return -1;
	*data = h->avp_value->os.data;
	*len = h->avp_value->os.len;
	if (!*data && *len) return -1;
	return 0;
}

static int bir_cb(struct msg **msg, struct avp *avp, struct session *sess, void *opaque,
		  enum disp_action *act)
{
	struct msg *ans;
	uint8_t *btid = NULL, *naf_id = NULL;
	size_t btid_len = 0, naf_len = 0;
	int gba_u_aware = 0;
	unsigned char me[32], uicc[32];
	(void)avp;
	(void)sess;
	(void)opaque;

	if (!msg || !*msg) return EINVAL;
	/* Read the request before it becomes the answer (the answer keeps it alive as its
	 * query, so the pointers stay valid until the answer is sent). */
	int bad = find_os(*msg, d_btid, &btid, &btid_len) || find_os(*msg, d_naf_id, &naf_id, &naf_len);
	{
		struct avp *a = NULL;
		struct avp_hdr *h = NULL;
		if (fd_msg_search_avp(*msg, d_gba_u_aware, &a) == 0 && a && fd_msg_avp_hdr(a, &h) == 0
		    && h && h->avp_value)
			gba_u_aware = h->avp_value->i32 == 1;
	}

	CHECK_FCT(fd_msg_new_answer_from_req(fd_g_config->cnf_dict, msg, 0));
	ans = *msg;
	CHECK_FCT(add_vsai(ans));

	if (bad || !btid || !naf_id) {
		CHECK_FCT(fd_msg_rescode_set(ans, "DIAMETER_MISSING_AVP",
					     "Transaction-Identifier and NAF-Id are required", NULL, 1));
		goto send;
	}
	if (btid_len == 0 || btid_len > MAX_BTID || naf_len == 0 || naf_len > MAX_NAF_ID) {
		CHECK_FCT(fd_msg_rescode_set(ans, "DIAMETER_INVALID_AVP_VALUE",
					     "Transaction-Identifier or NAF-Id length out of range", NULL,
					     1));
		goto send;
	}
	const struct subscriber *s = find_subscriber(btid, btid_len);
	if (!s) {
		CHECK_FCT(add_experimental(ans, 5403)); /* TRANSACTION_IDENTIFIER_INVALID */
		goto send;
	}
	if (s->not_authorized) {
		CHECK_FCT(add_experimental(ans, 5402)); /* NOT_AUTHORIZED */
		goto send;
	}
	if (derive(s, "gba-me", naf_id, naf_len, me)
	    || (s->gba_u && gba_u_aware && derive(s, "gba-u", naf_id, naf_len, uicc))) {
		memset(me, 0, sizeof me);
		memset(uicc, 0, sizeof uicc);
		CHECK_FCT(fd_msg_rescode_set(ans, "DIAMETER_UNABLE_TO_COMPLY", NULL, NULL, 1));
		goto send;
	}
	CHECK_FCT(fd_msg_rescode_set(ans, "DIAMETER_SUCCESS", NULL, NULL, 1));
	CHECK_FCT(add_os(ans, d_user_name, s->impi, s->impi_len));
	int r = add_os(ans, d_me_key, me, sizeof me);
	if (!r && s->gba_u && gba_u_aware) r = add_os(ans, d_uicc_key, uicc, sizeof uicc);
	memset(me, 0, sizeof me);
	memset(uicc, 0, sizeof uicc);
	CHECK_FCT(r);
	CHECK_FCT(add_time(ans, d_key_expiry, s->expires));
	CHECK_FCT(add_time(ans, d_creation_time, loaded_at));
	CHECK_FCT(add_i32(ans, d_gba_type, 0)); /* 3G GBA */
send:
	CHECK_FCT(fd_msg_send(msg, NULL, NULL));
	*act = DISP_ACT_CONT;
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Dictionary                                                                               */

static int zn_avp(avp_code_t code, char *name, enum dict_avp_basetype type,
		  struct dict_object **out)
{
	struct dict_object *unused;
	struct dict_avp_request req = { .avp_vendor = VENDOR_3GPP, .avp_code = code };
	if (!out) out = &unused;
	if (fd_dict_search(fd_g_config->cnf_dict, DICT_AVP, AVP_BY_CODE_AND_VENDOR, &req, out,
			   ENOENT) == 0)
		return 0;
	struct dict_avp_data data = { code, VENDOR_3GPP, name, AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY,
				      AVP_FLAG_VENDOR | AVP_FLAG_MANDATORY, type };
	CHECK_FCT(fd_dict_new(fd_g_config->cnf_dict, DICT_AVP, &data, NULL, out));
	return 0;
}

static int base_avp(char *name, struct dict_object **out)
{
	CHECK_FCT(fd_dict_search(fd_g_config->cnf_dict, DICT_AVP, AVP_BY_NAME, name, out, ENOENT));
	return 0;
}

static int dictionary(void)
{
	struct dictionary *dict = fd_g_config->cnf_dict;
	vendor_id_t vid = VENDOR_3GPP;
	application_id_t aid = APP_ZN;
	command_code_t cc = CMD_BOOTSTRAPPING_INFO;

	if (fd_dict_search(dict, DICT_VENDOR, VENDOR_BY_ID, &vid, &d_vendor, ENOENT)) {
		struct dict_vendor_data v = { VENDOR_3GPP, "3GPP" };
		CHECK_FCT(fd_dict_new(dict, DICT_VENDOR, &v, NULL, &d_vendor));
	}
	if (fd_dict_search(dict, DICT_APPLICATION, APPLICATION_BY_ID, &aid, &d_app, ENOENT)) {
		struct dict_application_data a = { APP_ZN, "3GPP Zn" };
		CHECK_FCT(fd_dict_new(dict, DICT_APPLICATION, &a, d_vendor, &d_app));
	}
	if (fd_dict_search(dict, DICT_COMMAND, CMD_BY_CODE_R, &cc, &d_bir, ENOENT)) {
		struct dict_cmd_data c = { CMD_BOOTSTRAPPING_INFO, "Bootstrapping-Info-Request",
					   CMD_FLAG_REQUEST | CMD_FLAG_PROXIABLE | CMD_FLAG_ERROR,
					   CMD_FLAG_REQUEST | CMD_FLAG_PROXIABLE };
		CHECK_FCT(fd_dict_new(dict, DICT_COMMAND, &c, d_app, &d_bir));
	}
	if (fd_dict_search(dict, DICT_COMMAND, CMD_BY_CODE_A, &cc, &d_bia, ENOENT)) {
		struct dict_cmd_data c = { CMD_BOOTSTRAPPING_INFO, "Bootstrapping-Info-Answer",
					   CMD_FLAG_REQUEST | CMD_FLAG_PROXIABLE, CMD_FLAG_PROXIABLE };
		CHECK_FCT(fd_dict_new(dict, DICT_COMMAND, &c, d_app, &d_bia));
	}
	CHECK_FCT(zn_avp(400, "GBA-UserSecSettings", AVP_TYPE_OCTETSTRING, NULL));
	CHECK_FCT(zn_avp(401, "Transaction-Identifier", AVP_TYPE_OCTETSTRING, &d_btid));
	CHECK_FCT(zn_avp(402, "NAF-Id", AVP_TYPE_OCTETSTRING, &d_naf_id));
	CHECK_FCT(zn_avp(403, "GAA-Service-Identifier", AVP_TYPE_OCTETSTRING, NULL));
	CHECK_FCT(zn_avp(404, "Key-ExpiryTime", AVP_TYPE_OCTETSTRING, &d_key_expiry));
	CHECK_FCT(zn_avp(405, "ME-Key-Material", AVP_TYPE_OCTETSTRING, &d_me_key));
	CHECK_FCT(zn_avp(406, "UICC-Key-Material", AVP_TYPE_OCTETSTRING, &d_uicc_key));
	CHECK_FCT(zn_avp(407, "GBA_U-Awareness-Indicator", AVP_TYPE_INTEGER32, &d_gba_u_aware));
	CHECK_FCT(zn_avp(408, "BootstrapInfoCreationTime", AVP_TYPE_OCTETSTRING, &d_creation_time));
	CHECK_FCT(zn_avp(410, "GBA-Type", AVP_TYPE_INTEGER32, &d_gba_type));
	CHECK_FCT(base_avp("User-Name", &d_user_name));
	CHECK_FCT(base_avp("Vendor-Specific-Application-Id", &d_vsai));
	CHECK_FCT(base_avp("Vendor-Id", &d_vendor_id));
	CHECK_FCT(base_avp("Auth-Application-Id", &d_auth_app_id));
	CHECK_FCT(base_avp("Experimental-Result", &d_exp_result));
	CHECK_FCT(base_avp("Experimental-Result-Code", &d_exp_result_code));
	return 0;
}

static int bsf_zn_entry(char *conffile)
{
	if (!conffile) {
		LOG_E("bsf_zn: give the subscriber file: LoadExtension = \"bsf_zn.fdx\" : \"FILE\";");
		return EINVAL;
	}
	loaded_at = (uint64_t)time(NULL);
	CHECK_FCT(dictionary());
	CHECK_FCT(load_subscribers(conffile));
	struct disp_when when = { .app = d_app, .command = d_bir };
	CHECK_FCT(fd_disp_register(bir_cb, DISP_HOW_CC, &when, NULL, &bir_hdl));
	CHECK_FCT(fd_disp_app_support(d_app, d_vendor, 1, 0));
	LOG_N("bsf_zn: answering Zn BIR (application %d, command %d)", APP_ZN,
	      CMD_BOOTSTRAPPING_INFO);
	return 0;
}

void fd_ext_fini(void)
{
	if (bir_hdl) fd_disp_unregister(&bir_hdl, NULL);
	if (subs) {
		memset(subs, 0, nsubs * sizeof *subs);
		free(subs);
		subs = NULL;
	}
	nsubs = 0;
}

EXTENSION_ENTRY("bsf_zn", bsf_zn_entry);
