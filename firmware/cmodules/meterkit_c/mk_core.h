/*
 * meterkit_c: the hot paths of the meter decoder in portable C.
 *
 * Depends only on libc and mbedtls (the one inside ESP-IDF, or Debian's libmbedtls-dev on a
 * host). No MicroPython headers here: modmeterkit_c.c is the thin binding, and the host tests
 * load this code through ctypes.
 */
#ifndef MK_CORE_H
#define MK_CORE_H

#include <stddef.h>
#include <stdint.h>

#define MK_OK            0   /* done; for decrypt: the tag matched (or none was given) */
#define MK_TAG_MISMATCH  1   /* decrypt: tag differs, `out` still holds the plaintext */
#define MK_ERR_ARG      (-1) /* a NULL pointer, a bad length or overlapping buffers: nothing written */
#define MK_ERR_CRYPTO   (-2) /* mbedtls refused (should not happen after the argument checks) */

#define MK_KEY_LEN       16  /* AES-128 only: DLMS security suites 0 and 1 */
#define MK_TAG_MIN        4  /* GCM allows 4..16 byte tags; DLMS uses 12 */
#define MK_TAG_MAX       16

/*
 * AES-128-GCM decrypt `len` bytes of `in` into `out` (`out` may be exactly `in`, never a partial
 * overlap). `tag_len` 0 means the frame carries no tag (DLMS security control 0x20/0x21): the
 * result is plain CTR from counter J0+1 and MK_OK. Otherwise 4..16 bytes of `tag` are compared
 * in constant time; on MK_TAG_MISMATCH the plaintext is still in `out`, because the caller
 * needs it to tell a wrong encryption key from a wrong authentication key.
 */
int mk_gcm_decrypt(const uint8_t key[MK_KEY_LEN], const uint8_t *iv, size_t iv_len,
                   const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                   const uint8_t *tag, size_t tag_len, uint8_t *out);

/* AES-128-GCM encrypt; writes `len` bytes to `out` and the first `tag_len` (0 or 4..16) bytes
 * of the tag to `tag`. */
int mk_gcm_encrypt(const uint8_t key[MK_KEY_LEN], const uint8_t *iv, size_t iv_len,
                   const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
                   uint8_t *out, uint8_t *tag, size_t tag_len);

/* Which GCM engine this build uses: "mbedtls-gcm" or "mbedtls-aes+ghash" (see mk_gcm.c). */
const char *mk_gcm_engine(void);

/* DSMR P1: CRC16/ARC (reflected 0x8005, init 0, no final xor). */
uint16_t mk_crc16_arc(const uint8_t *p, size_t n);

/* HDLC HCS/FCS: CRC-16/X-25 (reflected 0x1021, init 0xFFFF, final xor 0xFFFF). */
uint16_t mk_crc16_x25(const uint8_t *p, size_t n);

#endif
