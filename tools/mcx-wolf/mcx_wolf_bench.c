/*
 * mcx-wolf-bench: the rates of Debian's wolfSSL for the ECCSI (RFC 6507) and SAKKE (RFC 6508)
 * operations of a KMS and its clients, for `mbms-lab bench ibe`, which runs it beside the `ibe`
 * module in the same run.
 *
 *   mcx-wolf-bench SECONDS [mikey]
 *
 * With a KMS key (KSAK, z) of its own, for one 32-octet identity, it times each operation for
 * about SECONDS and prints one line per operation:
 *
 *   keyset  OPS  SECONDS   (SSK/PVT and RSK issued: wc_MakeEccsiPair + wc_MakeSakkeRsk)
 *   sign    OPS  SECONDS   (wc_HashEccsiId + wc_SignEccsiHash of a 64-octet message)
 *   verify  OPS  SECONDS   (PVT from the signature, wc_HashEccsiId, wc_VerifyEccsiHash)
 *   encap   OPS  SECONDS   (wc_MakeSakkeEncapsulatedSSV of a 16-octet SSV)
 *   decap   OPS  SECONDS   (wc_DeriveSakkeSSV with the RSK, no precomputed pairing table)
 *   decapt  OPS  SECONDS   (the same with wolfSSL's pairing table of the RSK, made once before:
 *                           wc_GenerateSakkeRskTable, wc_SetSakkeRsk with the table)
 *
 * With `mikey`, it times instead the cryptography of one MIKEY-SAKKE I_MESSAGE (RFC 6509), for
 * `mbms-lab bench sakke`, the same identity as sender and receiver:
 *
 *   build   OPS  SECONDS   (wc_MakeSakkeEncapsulatedSSV, then wc_HashEccsiId + wc_SignEccsiHash
 *                           of a 420-octet message: an I_MESSAGE's signed octets)
 *   open    OPS  SECONDS   (the verify above over the 420 octets, then wc_DeriveSakkeSSV)
 *
 * Each operation's results are checked (a signature verifies, a decapsulated SSV is the one
 * encapsulated); exit 2 on any failure.
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/settings.h>
#include <wolfssl/wolfcrypt/eccsi.h>
#include <wolfssl/wolfcrypt/sakke.h>
#include <wolfssl/wolfcrypt/random.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void check(const char *what, int rc)
{
    if (rc != 0) {
        fprintf(stderr, "mcx-wolf-bench: %s failed (%d)\n", what, rc);
        exit(2);
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Times `op` until `seconds` have passed (at least 3 calls) and prints the line. */
#define TIMED(name, seconds, op)                                                              \
    do {                                                                                      \
        unsigned long n_ = 0;                                                                 \
        double start_ = now(), took_;                                                         \
        do {                                                                                  \
            op;                                                                               \
            n_++;                                                                             \
            took_ = now() - start_;                                                           \
        } while (took_ < (seconds) || n_ < 3);                                                \
        printf("%-7s %lu %.6f\n", name, n_, took_);                                           \
        fflush(stdout);                                                                       \
    } while (0)

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || atof(argv[1]) <= 0 || (argc == 3 && strcmp(argv[2], "mikey"))) {
        fprintf(stderr, "usage: mcx-wolf-bench SECONDS [mikey]\n");
        return 2;
    }
    double seconds = atof(argv[1]);
    int mikey = argc == 3, all = !mikey;
    WC_RNG rng;
    EccsiKey kms, user;
    SakkeKey sakke, receiver;
    mp_int ssk;
    ecc_point *pvt = wc_ecc_new_point(), *pvt2 = wc_ecc_new_point();
    ecc_point *rsk = wc_ecc_new_point();
    byte id[32], msg[64], hash[WC_MAX_DIGEST_SIZE], sig[256], kpak[256], z[512];
    byte ssv[16], ssv_sent[16], auth[512], imsg[420];
    byte hash_sz;
    word32 sig_sz, kpak_sz = sizeof(kpak), z_sz = sizeof(z);
    word16 auth_sz = sizeof(auth);
    int ok = 0;

    if (pvt == NULL || pvt2 == NULL || rsk == NULL || mp_init(&ssk) != MP_OKAY)
        check("allocation", -1);
    memset(id, 0x5a, sizeof(id));
    memset(msg, 0x33, sizeof(msg));
    memset(imsg, 0x44, sizeof(imsg));
    memset(ssv_sent, 0x7e, sizeof(ssv_sent));
    check("wc_InitRng", wc_InitRng(&rng));

    /* The KMS: KSAK/KPAK and z/Z. */
    check("wc_InitEccsiKey", wc_InitEccsiKey(&kms, NULL, INVALID_DEVID));
    check("wc_MakeEccsiKey", wc_MakeEccsiKey(&kms, &rng));
    check("wc_ExportEccsiPublicKey", wc_ExportEccsiPublicKey(&kms, kpak, &kpak_sz, 1));
    check("wc_InitSakkeKey_ex", wc_InitSakkeKey_ex(&sakke, 128, ECC_SAKKE_1, NULL, INVALID_DEVID));
    check("wc_MakeSakkeKey", wc_MakeSakkeKey(&sakke, &rng));
    check("wc_ExportSakkePublicKey", wc_ExportSakkePublicKey(&sakke, z, &z_sz, 1));

    if (all) TIMED("keyset", seconds, {
        check("wc_MakeEccsiPair",
              wc_MakeEccsiPair(&kms, &rng, WC_HASH_TYPE_SHA256, id, sizeof(id), &ssk, pvt));
        check("wc_MakeSakkeRsk", wc_MakeSakkeRsk(&sakke, id, sizeof(id), rsk));
    });

    if (mikey) {
        check("wc_MakeEccsiPair",
              wc_MakeEccsiPair(&kms, &rng, WC_HASH_TYPE_SHA256, id, sizeof(id), &ssk, pvt));
        check("wc_MakeSakkeRsk", wc_MakeSakkeRsk(&sakke, id, sizeof(id), rsk));
    }

    /* The user: the KPAK only, and the key pair just issued. */
    check("wc_InitEccsiKey", wc_InitEccsiKey(&user, NULL, INVALID_DEVID));
    check("wc_ImportEccsiPublicKey", wc_ImportEccsiPublicKey(&user, kpak, kpak_sz, 1));
    check("wc_SetEccsiPair", wc_SetEccsiPair(&user, &ssk, pvt));
    if (all) TIMED("sign", seconds, {
        hash_sz = sizeof(hash);
        check("wc_HashEccsiId",
              wc_HashEccsiId(&user, WC_HASH_TYPE_SHA256, id, sizeof(id), pvt, hash, &hash_sz));
        check("wc_SetEccsiHash", wc_SetEccsiHash(&user, hash, hash_sz));
        sig_sz = sizeof(sig);
        check("wc_SignEccsiHash", wc_SignEccsiHash(&user, &rng, WC_HASH_TYPE_SHA256, msg,
                                                   sizeof(msg), sig, &sig_sz));
    });

    if (all) TIMED("verify", seconds, {
        check("wc_DecodeEccsiPvtFromSig", wc_DecodeEccsiPvtFromSig(&user, sig, sig_sz, pvt2));
        hash_sz = sizeof(hash);
        check("wc_HashEccsiId",
              wc_HashEccsiId(&user, WC_HASH_TYPE_SHA256, id, sizeof(id), pvt2, hash, &hash_sz));
        check("wc_SetEccsiHash", wc_SetEccsiHash(&user, hash, hash_sz));
        ok = 0;
        check("wc_VerifyEccsiHash", wc_VerifyEccsiHash(&user, WC_HASH_TYPE_SHA256, msg,
                                                       sizeof(msg), sig, sig_sz, &ok));
        if (!ok)
            check("the signature's verification", -1);
    });

    /* The sender: Z only. The receiver: Z and its RSK. */
    check("wc_InitSakkeKey_ex",
          wc_InitSakkeKey_ex(&receiver, 128, ECC_SAKKE_1, NULL, INVALID_DEVID));
    check("wc_ImportSakkePublicKey", wc_ImportSakkePublicKey(&receiver, z, z_sz, 1));
    check("wc_SetSakkeIdentity", wc_SetSakkeIdentity(&receiver, id, sizeof(id)));
    if (all) TIMED("encap", seconds, {
        memcpy(ssv, ssv_sent, sizeof(ssv));
        auth_sz = sizeof(auth);
        check("wc_MakeSakkeEncapsulatedSSV",
              wc_MakeSakkeEncapsulatedSSV(&receiver, WC_HASH_TYPE_SHA256, ssv, sizeof(ssv), auth,
                                          &auth_sz));
    });

    if (mikey) TIMED("build", seconds, {
        memcpy(ssv, ssv_sent, sizeof(ssv));
        auth_sz = sizeof(auth);
        check("wc_MakeSakkeEncapsulatedSSV",
              wc_MakeSakkeEncapsulatedSSV(&receiver, WC_HASH_TYPE_SHA256, ssv, sizeof(ssv), auth,
                                          &auth_sz));
        hash_sz = sizeof(hash);
        check("wc_HashEccsiId",
              wc_HashEccsiId(&user, WC_HASH_TYPE_SHA256, id, sizeof(id), pvt, hash, &hash_sz));
        check("wc_SetEccsiHash", wc_SetEccsiHash(&user, hash, hash_sz));
        sig_sz = sizeof(sig);
        check("wc_SignEccsiHash", wc_SignEccsiHash(&user, &rng, WC_HASH_TYPE_SHA256, imsg,
                                                   sizeof(imsg), sig, &sig_sz));
    });

    byte h[16];
    memcpy(h, ssv, sizeof(h));
    check("wc_SetSakkeRsk", wc_SetSakkeRsk(&receiver, rsk, NULL, 0));
    if (mikey) TIMED("open", seconds, {
        check("wc_DecodeEccsiPvtFromSig", wc_DecodeEccsiPvtFromSig(&user, sig, sig_sz, pvt2));
        hash_sz = sizeof(hash);
        check("wc_HashEccsiId",
              wc_HashEccsiId(&user, WC_HASH_TYPE_SHA256, id, sizeof(id), pvt2, hash, &hash_sz));
        check("wc_SetEccsiHash", wc_SetEccsiHash(&user, hash, hash_sz));
        ok = 0;
        check("wc_VerifyEccsiHash", wc_VerifyEccsiHash(&user, WC_HASH_TYPE_SHA256, imsg,
                                                       sizeof(imsg), sig, sig_sz, &ok));
        if (!ok)
            check("the signature's verification", -1);
        memcpy(ssv, h, sizeof(ssv));
        check("wc_DeriveSakkeSSV",
              wc_DeriveSakkeSSV(&receiver, WC_HASH_TYPE_SHA256, ssv, sizeof(ssv), auth, auth_sz));
        if (memcmp(ssv, ssv_sent, sizeof(ssv)) != 0)
            check("the decapsulated SSV", -1);
    });
    if (all) TIMED("decap", seconds, {
        memcpy(ssv, h, sizeof(ssv));
        check("wc_DeriveSakkeSSV",
              wc_DeriveSakkeSSV(&receiver, WC_HASH_TYPE_SHA256, ssv, sizeof(ssv), auth, auth_sz));
        if (memcmp(ssv, ssv_sent, sizeof(ssv)) != 0)
            check("the decapsulated SSV", -1);
    });
    if (all) {
        word32 table_len = 0;
        int rc = wc_GenerateSakkeRskTable(&receiver, rsk, NULL, &table_len);
        if (rc != LENGTH_ONLY_E)
            check("wc_GenerateSakkeRskTable (length)", rc);
        byte *table = malloc(table_len);
        if (table == NULL)
            check("allocation", -1);
        check("wc_GenerateSakkeRskTable",
              wc_GenerateSakkeRskTable(&receiver, rsk, table, &table_len));
        check("wc_SetSakkeRsk", wc_SetSakkeRsk(&receiver, rsk, table, table_len));
        TIMED("decapt", seconds, {
            memcpy(ssv, h, sizeof(ssv));
            check("wc_DeriveSakkeSSV", wc_DeriveSakkeSSV(&receiver, WC_HASH_TYPE_SHA256, ssv,
                                                         sizeof(ssv), auth, auth_sz));
            if (memcmp(ssv, ssv_sent, sizeof(ssv)) != 0)
                check("the decapsulated SSV", -1);
        });
        /* The table is the RSK's: cleared before it is freed. */
        explicit_bzero(table, table_len);
        free(table);
    }
    return 0;
}
