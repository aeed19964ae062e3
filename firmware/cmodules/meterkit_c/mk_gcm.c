/*
 * AES-128-GCM for DLMS general-glo-ciphering frames.
 *
 * Two engines behind one argument check:
 *  - mbedtls GCM where the mbedtls build has it (ESP-IDF enables MBEDTLS_GCM_C by default and
 *    accelerates AES, on some chips GCM itself, in hardware);
 *  - mbedtls AES-ECB + a GHASH of our own otherwise: MicroPython's bundled mbedtls config (unix,
 *    stm32, rp2 ports) enables AES but not GCM. -DMK_GCM_PORTABLE forces it, so the host tests
 *    run both engines against the same reference.
 * Either way the full 16-byte tag is computed and only the requested prefix is compared or
 * returned, because mbedtls' own auth_decrypt wipes the plaintext on a mismatch and the caller
 * needs that plaintext for its key diagnostics.
 */
#include <string.h>

#include "mbedtls/aes.h"
#include "mbedtls/platform_util.h"
#include "mk_core.h"

#if defined(MBEDTLS_GCM_C) && !defined(MK_GCM_PORTABLE)
#define MK_USE_MBEDTLS_GCM 1
#include "mbedtls/gcm.h"
#else
#define MK_USE_MBEDTLS_GCM 0
#endif

#define BLOCK 16
#define MK_MAX_TEXT_LEN 0xFFFFFFFE0ULL /* GCM's limit: 2^39 - 256 bits */

enum { DIR_DECRYPT, DIR_ENCRYPT };

static int ranges_overlap_badly(const uint8_t *a, const uint8_t *b, size_t len) {
    if (len == 0 || a == b) {
        return 0; /* exact in-place is fine */
    }
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y ? y - x < len : x - y < len;
}

static int arguments_ok(const uint8_t *key, const uint8_t *iv, size_t iv_len,
                        const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                        const uint8_t *tag, size_t tag_len, const uint8_t *out) {
    if (key == NULL || iv == NULL || iv_len == 0 || (aad == NULL && aad_len != 0)) {
        return 0;
    }
    if (len != 0 && (in == NULL || out == NULL || ranges_overlap_badly(in, out, len))) {
        return 0;
    }
#if SIZE_MAX > 0xFFFFFFFFu /* a 32-bit size_t is below the limit: the test is for 64-bit hosts */
    if ((unsigned long long)len > MK_MAX_TEXT_LEN) {
        return 0;
    }
#endif
    if (tag_len != 0 && (tag == NULL || tag_len < MK_TAG_MIN || tag_len > MK_TAG_MAX)) {
        return 0;
    }
    return 1;
}

#if MK_USE_MBEDTLS_GCM

static int gcm_full(int dir, const uint8_t *key, const uint8_t *iv, size_t iv_len,
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                    uint8_t *out, uint8_t full_tag[BLOCK]) {
    mbedtls_gcm_context ctx;
    mbedtls_gcm_init(&ctx);
    int rc = mbedtls_gcm_setkey(&ctx, MBEDTLS_CIPHER_ID_AES, key, MK_KEY_LEN * 8);
    if (rc == 0) {
        rc = mbedtls_gcm_crypt_and_tag(&ctx, dir == DIR_ENCRYPT ? MBEDTLS_GCM_ENCRYPT : MBEDTLS_GCM_DECRYPT,
                                       len, iv, iv_len, aad, aad_len, in, out, BLOCK, full_tag);
    }
    mbedtls_gcm_free(&ctx);
    return rc == 0 ? MK_OK : MK_ERR_CRYPTO;
}

const char *mk_gcm_engine(void) {
    return "mbedtls-gcm";
}

#else /* AES from mbedtls, GHASH here */

typedef struct {
    uint64_t hi, lo; /* a GF(2^128) element, big-endian halves as GCM writes them */
} gf128;

typedef struct {
    mbedtls_aes_context aes;
    gf128 h; /* hash key E(K, 0^128) */
    gf128 x; /* running GHASH value */
} ghash_state;

static uint64_t load64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static void store64(uint8_t *p, uint64_t v) {
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

/* x = x * h in GCM's bit-reflected field; masks instead of branches keep it constant-time. */
static void gf128_mul(gf128 *x, const gf128 *h) {
    uint64_t zh = 0, zl = 0, vh = h->hi, vl = h->lo;
    for (int i = 0; i < 128; i++) {
        uint64_t bit = (i < 64 ? x->hi >> (63 - i) : x->lo >> (127 - i)) & 1;
        uint64_t take = (uint64_t)0 - bit;
        zh ^= vh & take;
        zl ^= vl & take;
        uint64_t carry = (uint64_t)0 - (vl & 1);
        vl = (vl >> 1) | (vh << 63);
        vh = (vh >> 1) ^ (carry & 0xE100000000000000ULL);
    }
    x->hi = zh;
    x->lo = zl;
}

/* Absorb n bytes, zero-padding the last partial block (GCM pads AAD and text separately). */
static void ghash_absorb(ghash_state *g, const uint8_t *p, size_t n) {
    while (n > 0) {
        uint8_t block[BLOCK] = {0};
        size_t take = n < BLOCK ? n : BLOCK;
        memcpy(block, p, take);
        g->x.hi ^= load64(block);
        g->x.lo ^= load64(block + 8);
        gf128_mul(&g->x, &g->h);
        p += take;
        n -= take;
    }
}

static void ghash_lengths(ghash_state *g, uint64_t first_len, uint64_t second_len) {
    uint8_t block[BLOCK];
    store64(block, first_len * 8);
    store64(block + 8, second_len * 8);
    ghash_absorb(g, block, BLOCK);
}

static void increment32(uint8_t counter[BLOCK]) {
    for (int i = BLOCK - 1; i >= BLOCK - 4; i--) {
        if (++counter[i] != 0) {
            break;
        }
    }
}

/* J0: IV || 0^31 || 1 for the usual 12-byte IV, GHASH(IV, lengths) for any other length. */
static void initial_counter(ghash_state *g, const uint8_t *iv, size_t iv_len, uint8_t j0[BLOCK]) {
    if (iv_len == 12) {
        memcpy(j0, iv, 12);
        j0[12] = j0[13] = j0[14] = 0;
        j0[15] = 1;
        return;
    }
    g->x.hi = g->x.lo = 0;
    ghash_absorb(g, iv, iv_len);
    ghash_lengths(g, 0, iv_len);
    store64(j0, g->x.hi);
    store64(j0 + 8, g->x.lo);
    g->x.hi = g->x.lo = 0;
}

/* CTR from J0+1 with GHASH over the ciphertext: read before writing, so out == in works. */
static void ctr_and_hash(ghash_state *g, int dir, uint8_t counter[BLOCK],
                         const uint8_t *in, size_t len, uint8_t *out) {
    uint8_t stream[BLOCK];
    for (size_t done = 0; done < len; done += BLOCK) {
        size_t n = len - done < BLOCK ? len - done : BLOCK;
        if (dir == DIR_DECRYPT) {
            ghash_absorb(g, in + done, n);
        }
        increment32(counter);
        mbedtls_aes_crypt_ecb(&g->aes, MBEDTLS_AES_ENCRYPT, counter, stream);
        for (size_t i = 0; i < n; i++) {
            out[done + i] = in[done + i] ^ stream[i];
        }
        if (dir == DIR_ENCRYPT) {
            ghash_absorb(g, out + done, n);
        }
    }
    mbedtls_platform_zeroize(stream, sizeof stream);
}

static int gcm_full(int dir, const uint8_t *key, const uint8_t *iv, size_t iv_len,
                    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                    uint8_t *out, uint8_t full_tag[BLOCK]) {
    static const uint8_t zero[BLOCK] = {0};
    uint8_t block[BLOCK], j0[BLOCK], counter[BLOCK];
    ghash_state g;
    memset(&g, 0, sizeof g);
    mbedtls_aes_init(&g.aes);
    int rc = mbedtls_aes_setkey_enc(&g.aes, key, MK_KEY_LEN * 8);
    if (rc == 0) {
        rc = mbedtls_aes_crypt_ecb(&g.aes, MBEDTLS_AES_ENCRYPT, zero, block);
    }
    if (rc == 0) {
        g.h.hi = load64(block);
        g.h.lo = load64(block + 8);
        initial_counter(&g, iv, iv_len, j0);
        memcpy(counter, j0, BLOCK);
        ghash_absorb(&g, aad, aad_len);
        ctr_and_hash(&g, dir, counter, in, len, out);
        ghash_lengths(&g, aad_len, len);
        rc = mbedtls_aes_crypt_ecb(&g.aes, MBEDTLS_AES_ENCRYPT, j0, full_tag);
        store64(block, g.x.hi);
        store64(block + 8, g.x.lo);
        for (int i = 0; i < BLOCK; i++) {
            full_tag[i] ^= block[i];
        }
    }
    mbedtls_aes_free(&g.aes);
    mbedtls_platform_zeroize(&g, sizeof g);
    mbedtls_platform_zeroize(block, sizeof block);
    return rc == 0 ? MK_OK : MK_ERR_CRYPTO;
}

const char *mk_gcm_engine(void) {
    return "mbedtls-aes+ghash";
}

#endif

static int equal_in_constant_time(const uint8_t *a, const uint8_t *b, size_t n) {
    uint8_t diff = 0;
    for (size_t i = 0; i < n; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}

int mk_gcm_decrypt(const uint8_t key[MK_KEY_LEN], const uint8_t *iv, size_t iv_len,
                   const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                   const uint8_t *tag, size_t tag_len, uint8_t *out) {
    uint8_t full_tag[BLOCK];
    if (!arguments_ok(key, iv, iv_len, aad, aad_len, in, len, tag, tag_len, out)) {
        return MK_ERR_ARG;
    }
    int rc = gcm_full(DIR_DECRYPT, key, iv, iv_len, aad, aad_len, in, len, out, full_tag);
    if (rc == MK_OK && tag_len != 0 && !equal_in_constant_time(full_tag, tag, tag_len)) {
        rc = MK_TAG_MISMATCH;
    }
    mbedtls_platform_zeroize(full_tag, sizeof full_tag);
    return rc;
}

int mk_gcm_encrypt(const uint8_t key[MK_KEY_LEN], const uint8_t *iv, size_t iv_len,
                   const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                   uint8_t *out, uint8_t *tag, size_t tag_len) {
    uint8_t full_tag[BLOCK];
    if (!arguments_ok(key, iv, iv_len, aad, aad_len, in, len, tag, tag_len, out)) {
        return MK_ERR_ARG;
    }
    int rc = gcm_full(DIR_ENCRYPT, key, iv, iv_len, aad, aad_len, in, len, out, full_tag);
    if (rc == MK_OK && tag_len != 0) {
        memcpy(tag, full_tag, tag_len);
    }
    mbedtls_platform_zeroize(full_tag, sizeof full_tag);
    return rc;
}
