/* Shared helpers of the C tests: counted checks and reading the project's vector files. */
#ifndef MBMS_C_TESTS_CHECK_H
#define MBMS_C_TESTS_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mbms_keys.h>

static int checks_passed;
static int checks_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond) {                                                                  \
            checks_passed++;                                                         \
        } else {                                                                     \
            checks_failed++;                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* A call's result is the expected code (printed by name when not). */
#define CHECK_RC(call, expected)                                                     \
    do {                                                                             \
        mbms_result rc_ = (call);                                                    \
        if (rc_ == (expected)) {                                                     \
            checks_passed++;                                                         \
        } else {                                                                     \
            checks_failed++;                                                         \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s\n", __FILE__,        \
                    __LINE__, #call, mbms_result_name(rc_),                          \
                    mbms_result_name(expected));                                     \
        }                                                                            \
    } while (0)

static inline int report(const char *name) {
    printf("%s: %d checks passed, %d failed\n", name, checks_passed, checks_failed);
    return checks_failed == 0 && checks_passed > 0 ? 0 : 1;
}

/* The whole file, NUL-terminated; exits on failure. */
static inline char *read_file(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            char *grown = realloc(buf, cap);
            if (grown == NULL) {
                exit(2);
            }
            buf = grown;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static inline int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The octets of the first string field `"key": "<hex>"` of a vector file, or the text itself
 * when `raw` is set; *len is its length. Exits when the field is missing. */
static inline uint8_t *vector_field(const char *dir, const char *file, const char *key, int raw,
                             size_t *len) {
    char *text = read_file(dir, file);
    char pattern[128];
    snprintf(pattern, sizeof pattern, "\"%s\": \"", key);
    char *start = strstr(text, pattern);
    if (start == NULL) {
        fprintf(stderr, "%s: no field %s\n", file, key);
        exit(2);
    }
    start += strlen(pattern);
    char *end = strchr(start, '"');
    if (end == NULL) {
        exit(2);
    }
    size_t n = (size_t)(end - start);
    uint8_t *out = malloc(n + 1);
    if (out == NULL) {
        exit(2);
    }
    if (raw) {
        memcpy(out, start, n);
        out[n] = 0;
        *len = n;
    } else {
        for (size_t i = 0; i + 1 < n; i += 2) {
            int hi = hexval(start[i]), lo = hexval(start[i + 1]);
            if (hi < 0 || lo < 0) {
                fprintf(stderr, "%s: %s is not hex\n", file, key);
                exit(2);
            }
            out[i / 2] = (uint8_t)(hi << 4 | lo);
        }
        *len = n / 2;
    }
    free(text);
    return out;
}

#endif
