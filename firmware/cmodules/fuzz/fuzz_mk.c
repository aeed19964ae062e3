/*
 * libFuzzer target over the meterkit_c entry points (built by tools/build_clib.py --fuzzer with
 * the portable engine). Each input picks lengths, a key, IV, AAD and text; the checks:
 *  - encryption equals mbedtls' own GCM (a differential test of our GHASH and counter logic);
 *  - decryption round-trips, in place too, and a flipped tag bit gives MK_TAG_MISMATCH with the
 *    plaintext still returned;
 *  - invalid lengths and overlapping buffers are refused without writing;
 *  - both CRCs equal a bitwise reference and leave the known residue over data || CRC.
 * Every buffer is heap-allocated at its exact size, so ASan sees any write past the end.
 */
#include <stdlib.h>
#include <string.h>

#include "mbedtls/gcm.h"
#include "mk_core.h"

#define CHECK(cond) do { if (!(cond)) { __builtin_trap(); } } while (0)

typedef struct {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t take_byte(reader *r) {
    if (r->n == 0) {
        return 0;
    }
    r->n--;
    return *r->p++;
}

/* A heap copy of the next `len` bytes (zero-filled past the input); malloc(0) stays distinct. */
static uint8_t *take_copy(reader *r, size_t len) {
    uint8_t *copy = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) {
        copy[i] = take_byte(r);
    }
    return copy;
}

static uint16_t crc_bitwise(uint16_t poly, uint16_t crc, const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ poly) : (uint16_t)(crc >> 1);
        }
    }
    return crc;
}

static void check_crcs(const uint8_t *data, size_t n) {
    uint16_t arc = mk_crc16_arc(data, n), x25 = mk_crc16_x25(data, n);
    CHECK(arc == crc_bitwise(0xA001, 0, data, n));
    CHECK(x25 == (crc_bitwise(0x8408, 0xFFFF, data, n) ^ 0xFFFF));
    uint8_t *framed = malloc(n + 2);
    if (n) {
        memcpy(framed, data, n);
    }
    framed[n] = (uint8_t)arc;
    framed[n + 1] = (uint8_t)(arc >> 8);
    CHECK(mk_crc16_arc(framed, n + 2) == 0);
    framed[n] = (uint8_t)x25;
    framed[n + 1] = (uint8_t)(x25 >> 8);
    CHECK(mk_crc16_x25(framed, n + 2) == 0x0F47);
    free(framed);
}

static void reference_gcm(const uint8_t *key, const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                          size_t aad_len, const uint8_t *text, size_t len, uint8_t *out, uint8_t tag[16]) {
    mbedtls_gcm_context ctx;
    mbedtls_gcm_init(&ctx);
    CHECK(mbedtls_gcm_setkey(&ctx, MBEDTLS_CIPHER_ID_AES, key, 128) == 0);
    CHECK(mbedtls_gcm_crypt_and_tag(&ctx, MBEDTLS_GCM_ENCRYPT, len, iv, iv_len, aad, aad_len,
                                    text, out, 16, tag) == 0);
    mbedtls_gcm_free(&ctx);
}

static void check_gcm(const uint8_t *key, const uint8_t *iv, size_t iv_len, const uint8_t *aad,
                      size_t aad_len, const uint8_t *text, size_t len, size_t tag_len) {
    uint8_t *cipher = malloc(len ? len : 1), *plain = malloc(len ? len : 1);
    uint8_t *expected = malloc(len ? len : 1), *tag = malloc(tag_len ? tag_len : 1);
    uint8_t expected_tag[16];
    int valid_tag = tag_len == 0 || (tag_len >= MK_TAG_MIN && tag_len <= MK_TAG_MAX);

    int rc = mk_gcm_encrypt(key, iv, iv_len, aad, aad_len, text, len, cipher, tag, tag_len);
    CHECK(rc == (valid_tag ? MK_OK : MK_ERR_ARG));
    if (valid_tag) {
        reference_gcm(key, iv, iv_len, aad, aad_len, text, len, expected, expected_tag);
        CHECK(len == 0 || memcmp(cipher, expected, len) == 0);
        CHECK(tag_len == 0 || memcmp(tag, expected_tag, tag_len) == 0);

        CHECK(mk_gcm_decrypt(key, iv, iv_len, aad, aad_len, cipher, len, tag, tag_len, plain) == MK_OK);
        CHECK(len == 0 || memcmp(plain, text, len) == 0);
        if (tag_len) {
            tag[tag_len - 1] ^= 0x01;
            memset(plain, 0, len);
            CHECK(mk_gcm_decrypt(key, iv, iv_len, aad, aad_len, cipher, len, tag, tag_len, plain)
                  == MK_TAG_MISMATCH);
            CHECK(len == 0 || memcmp(plain, text, len) == 0);
        }
        /* in place: the ciphertext buffer becomes the plaintext */
        CHECK(mk_gcm_decrypt(key, iv, iv_len, aad, aad_len, cipher, len, NULL, 0, cipher) == MK_OK);
        CHECK(len == 0 || memcmp(cipher, text, len) == 0);
    }
    /* refused: no key, empty IV, partial overlap */
    CHECK(mk_gcm_decrypt(NULL, iv, iv_len, aad, aad_len, text, len, NULL, 0, plain) == MK_ERR_ARG);
    CHECK(mk_gcm_decrypt(key, iv, 0, aad, aad_len, text, len, NULL, 0, plain) == MK_ERR_ARG);
    if (len > 2) { /* [0, len-1) and [1, len) share bytes */
        memcpy(plain, text, len);
        CHECK(mk_gcm_decrypt(key, iv, iv_len, aad, aad_len, plain, len - 1, NULL, 0, plain + 1)
              == MK_ERR_ARG);
        CHECK(memcmp(plain, text, len) == 0);
    }
    free(cipher);
    free(plain);
    free(expected);
    free(tag);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, size};
    uint8_t shape = take_byte(&r), tag_code = take_byte(&r), aad_code = take_byte(&r);
    size_t iv_len = (shape & 0x80) ? 12 : 1 + (shape & 0x3F);
    size_t tag_len = tag_code % 18 == 17 ? 12 : tag_code % 18; /* 12 is DLMS; 1..3 are invalid */
    size_t aad_len = aad_code % 48;
    uint8_t *key = take_copy(&r, MK_KEY_LEN);
    uint8_t *iv = take_copy(&r, iv_len);
    uint8_t *aad = take_copy(&r, aad_len);
    uint8_t *text = take_copy(&r, r.n);
    size_t len = size > 3 + MK_KEY_LEN + iv_len + aad_len ? size - 3 - MK_KEY_LEN - iv_len - aad_len : 0;

    check_gcm(key, iv, iv_len, aad, aad_len, text, len, tag_len);
    check_crcs(data, size);
    free(key);
    free(iv);
    free(aad);
    free(text);
    return 0;
}
