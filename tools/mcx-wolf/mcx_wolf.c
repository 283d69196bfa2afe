/*
 * mcx-wolf: ECCSI (RFC 6507) and SAKKE (RFC 6508) through Debian's wolfSSL, an implementation
 * independent of this project's `ibe` module, for tests/ibe_wolfssl.rs.
 *
 *   mcx-wolf eccsi-validate KPAK ID SSK PVT
 *   mcx-wolf eccsi-verify   KPAK ID MSG SIG
 *   mcx-wolf eccsi-sign     KPAK ID SSK PVT MSG     -> SIG (r || s || PVT)
 *   mcx-wolf sakke-validate Z ID RSK
 *   mcx-wolf sakke-encap    Z ID SSV                -> R || H
 *   mcx-wolf sakke-decap    Z ID RSK DATA           -> SSV
 *   mcx-wolf mikey-verify   KPAK ID MESSAGE
 *
 * mikey-verify checks the ECCSI signature of a MIKEY-SAKKE message (RFC 6509): the message ends
 * with the SIGN payload of S type 2 (ECCSI) and 129 octets, and the signature covers every octet
 * before the signature field, the SIGN type/length octets included.
 *
 * Arguments and output in hex; points 04 || x || y. Exit 0: done / valid; 1: invalid; 2: error.
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/eccsi.h>
#include <wolfssl/wolfcrypt/sakke.h>
#include <wolfssl/wolfcrypt/random.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OCTETS 4096

struct octets {
    byte b[MAX_OCTETS];
    word32 n;
};

static void die(const char *what, int rc)
{
    fprintf(stderr, "mcx-wolf: %s failed (%d)\n", what, rc);
    exit(2);
}

static void unhex(const char *s, struct octets *o)
{
    size_t len = strlen(s);
    if (len % 2 != 0 || len / 2 > MAX_OCTETS)
        die("hex argument", (int)len);
    o->n = (word32)(len / 2);
    for (word32 i = 0; i < o->n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            die("hex argument", (int)i);
        o->b[i] = (byte)v;
    }
}

static void print_hex(const byte *b, word32 n)
{
    for (word32 i = 0; i < n; i++)
        printf("%02x", b[i]);
}

/* ECCSI key with the KPAK imported, the PVT decoded and HS set. */
static void eccsi_setup(EccsiKey *key, const char *kpak_hex, const char *id_hex,
                        ecc_point *pvt, const struct octets *pvt_or_sig, int from_sig)
{
    struct octets kpak, id;
    byte hash[WC_MAX_DIGEST_SIZE];
    byte hash_sz = sizeof(hash);
    int rc;
    unhex(kpak_hex, &kpak);
    unhex(id_hex, &id);
    if ((rc = wc_InitEccsiKey(key, NULL, INVALID_DEVID)) != 0)
        die("wc_InitEccsiKey", rc);
    if ((rc = wc_ImportEccsiPublicKey(key, kpak.b, kpak.n, 1)) != 0)
        die("wc_ImportEccsiPublicKey", rc);
    rc = from_sig ? wc_DecodeEccsiPvtFromSig(key, pvt_or_sig->b, pvt_or_sig->n, pvt)
                  : wc_DecodeEccsiPvt(key, pvt_or_sig->b, pvt_or_sig->n, pvt);
    if (rc != 0)
        die("decoding the PVT", rc);
    if ((rc = wc_HashEccsiId(key, WC_HASH_TYPE_SHA256, id.b, id.n, pvt, hash, &hash_sz)) != 0)
        die("wc_HashEccsiId", rc);
    if ((rc = wc_SetEccsiHash(key, hash, hash_sz)) != 0)
        die("wc_SetEccsiHash", rc);
}

static int eccsi(int argc, char **argv)
{
    EccsiKey key;
    ecc_point *pvt = wc_ecc_new_point();
    mp_int ssk;
    struct octets a, b, c;
    int rc, ok = 0;
    const char *cmd = argv[1];
    if (pvt == NULL || mp_init(&ssk) != MP_OKAY)
        die("allocation", 0);
    if (strcmp(cmd, "eccsi-verify") == 0 && argc == 6) {
        unhex(argv[5], &b); /* SIG */
        eccsi_setup(&key, argv[2], argv[3], pvt, &b, 1);
        unhex(argv[4], &a); /* MSG */
        if ((rc = wc_VerifyEccsiHash(&key, WC_HASH_TYPE_SHA256, a.b, a.n, b.b, b.n, &ok)) != 0)
            ok = 0;
        return ok ? 0 : 1;
    }
    if ((strcmp(cmd, "eccsi-validate") == 0 && argc == 6)
        || (strcmp(cmd, "eccsi-sign") == 0 && argc == 7)) {
        unhex(argv[5], &b); /* PVT */
        eccsi_setup(&key, argv[2], argv[3], pvt, &b, 0);
        unhex(argv[4], &a); /* SSK */
        if ((rc = wc_DecodeEccsiSsk(&key, a.b, a.n, &ssk)) != 0)
            die("wc_DecodeEccsiSsk", rc);
        if (strcmp(cmd, "eccsi-validate") == 0) {
            unhex(argv[3], &c); /* ID */
            rc = wc_ValidateEccsiPair(&key, WC_HASH_TYPE_SHA256, c.b, c.n, &ssk, pvt, &ok);
            return (rc == 0 && ok) ? 0 : 1;
        }
        WC_RNG rng;
        byte sig[256];
        word32 sig_sz = sizeof(sig);
        unhex(argv[6], &c); /* MSG */
        if ((rc = wc_InitRng(&rng)) != 0)
            die("wc_InitRng", rc);
        if ((rc = wc_SetEccsiPair(&key, &ssk, pvt)) != 0)
            die("wc_SetEccsiPair", rc);
        if ((rc = wc_SignEccsiHash(&key, &rng, WC_HASH_TYPE_SHA256, c.b, c.n, sig, &sig_sz)) != 0)
            die("wc_SignEccsiHash", rc);
        print_hex(sig, sig_sz);
        printf("\n");
        return 0;
    }
    die("usage (see the source's header)", argc);
    return 2;
}

static int sakke(int argc, char **argv)
{
    SakkeKey key;
    struct octets z, id, a, b;
    ecc_point *rsk = wc_ecc_new_point();
    int rc, ok = 0;
    const char *cmd = argv[1];
    if (rsk == NULL || argc < 5)
        die("usage (see the source's header)", argc);
    unhex(argv[2], &z);
    unhex(argv[3], &id);
    if ((rc = wc_InitSakkeKey_ex(&key, 128, ECC_SAKKE_1, NULL, INVALID_DEVID)) != 0)
        die("wc_InitSakkeKey_ex", rc);
    if ((rc = wc_ImportSakkePublicKey(&key, z.b, z.n, 1)) != 0)
        die("wc_ImportSakkePublicKey", rc);
    if (strcmp(cmd, "sakke-validate") == 0 && argc == 5) {
        unhex(argv[4], &a);
        if (wc_DecodeSakkeRsk(&key, a.b, a.n, rsk) != 0)
            return 1;
        rc = wc_ValidateSakkeRsk(&key, id.b, (word16)id.n, rsk, &ok);
        return (rc == 0 && ok) ? 0 : 1;
    }
    if (strcmp(cmd, "sakke-encap") == 0 && argc == 5) {
        byte auth[512];
        word16 auth_sz = sizeof(auth);
        unhex(argv[4], &a); /* SSV, encrypted in place to H */
        if ((rc = wc_SetSakkeIdentity(&key, id.b, (word16)id.n)) != 0)
            die("wc_SetSakkeIdentity", rc);
        if ((rc = wc_MakeSakkeEncapsulatedSSV(&key, WC_HASH_TYPE_SHA256, a.b, (word16)a.n, auth,
                                              &auth_sz)) != 0)
            die("wc_MakeSakkeEncapsulatedSSV", rc);
        print_hex(auth, auth_sz);
        print_hex(a.b, a.n);
        printf("\n");
        return 0;
    }
    if (strcmp(cmd, "sakke-decap") == 0 && argc == 6) {
        unhex(argv[4], &a); /* RSK */
        unhex(argv[5], &b); /* R || H */
        if (b.n != 257 + 16)
            die("data length", (int)b.n);
        if ((rc = wc_DecodeSakkeRsk(&key, a.b, a.n, rsk)) != 0)
            die("wc_DecodeSakkeRsk", rc);
        if ((rc = wc_SetSakkeRsk(&key, rsk, NULL, 0)) != 0)
            die("wc_SetSakkeRsk", rc);
        if ((rc = wc_SetSakkeIdentity(&key, id.b, (word16)id.n)) != 0)
            die("wc_SetSakkeIdentity", rc);
        byte ssv[16];
        memcpy(ssv, b.b + 257, 16);
        if (wc_DeriveSakkeSSV(&key, WC_HASH_TYPE_SHA256, ssv, 16, b.b, 257) != 0)
            return 1;
        print_hex(ssv, 16);
        printf("\n");
        return 0;
    }
    die("usage (see the source's header)", argc);
    return 2;
}

/* mikey-verify: the signature is the last 129 octets, after the SIGN octets 0x20 0x81. */
static int mikey_verify(int argc, char **argv)
{
    EccsiKey key;
    ecc_point *pvt = wc_ecc_new_point();
    struct octets msg, sig;
    int ok = 0;
    const word32 sig_len = 129;
    if (pvt == NULL || argc != 5)
        die("usage (see the source's header)", argc);
    unhex(argv[4], &msg);
    if (msg.n < sig_len + 2 || msg.b[msg.n - sig_len - 2] != 0x20
        || msg.b[msg.n - sig_len - 1] != 0x81)
        return 1;
    sig.n = sig_len;
    memcpy(sig.b, msg.b + msg.n - sig_len, sig_len);
    eccsi_setup(&key, argv[2], argv[3], pvt, &sig, 1);
    if (wc_VerifyEccsiHash(&key, WC_HASH_TYPE_SHA256, msg.b, msg.n - sig_len, sig.b, sig.n, &ok)
        != 0)
        ok = 0;
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage (see the source's header)", argc);
    if (strncmp(argv[1], "eccsi-", 6) == 0)
        return eccsi(argc, argv);
    if (strncmp(argv[1], "sakke-", 6) == 0)
        return sakke(argc, argv);
    if (strcmp(argv[1], "mikey-verify") == 0)
        return mikey_verify(argc, argv);
    die("usage (see the source's header)", argc);
    return 2;
}
