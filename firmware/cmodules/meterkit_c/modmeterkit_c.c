/*
 * meterkit_c: MicroPython binding for mk_gcm.c and mk_crc.c (USER_C_MODULES layout).
 *
 *   gcm_decrypt(key, iv, ciphertext, aad, tag_or_None) -> (plaintext, tag_ok: bool or None)
 *   gcm_encrypt(key, iv, plaintext, aad, tag_len) -> (ciphertext, tag)
 *   crc16_arc(data[, start[, end]]) -> int
 *   crc16_x25(data[, start[, end]]) -> int
 *
 * Every argument is checked here before the C core sees it; bad ones raise ValueError. A tag
 * mismatch is not an error: the plaintext comes back with tag_ok False, and meterkit.security
 * decides what it means.
 */
#include "py/runtime.h"
#include "py/objstr.h"

#include "mk_core.h"

static const uint8_t *buffer_arg(mp_obj_t obj, size_t *len) {
    mp_buffer_info_t info;
    mp_get_buffer_raise(obj, &info, MP_BUFFER_READ);
    *len = info.len;
    return (const uint8_t *)info.buf;
}

static const uint8_t *key_arg(mp_obj_t obj) {
    size_t len;
    const uint8_t *key = buffer_arg(obj, &len);
    if (len != MK_KEY_LEN) {
        mp_raise_ValueError(MP_ERROR_TEXT("key must be 16 bytes (AES-128)"));
    }
    return key;
}

static const uint8_t *iv_arg(mp_obj_t obj, size_t *len) {
    const uint8_t *iv = buffer_arg(obj, len);
    if (*len == 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("iv must not be empty"));
    }
    return iv;
}

static void check_tag_len(size_t tag_len) {
    if (tag_len != 0 && (tag_len < MK_TAG_MIN || tag_len > MK_TAG_MAX)) {
        mp_raise_ValueError(MP_ERROR_TEXT("tag must be 4..16 bytes"));
    }
}

/* gcm_decrypt(key, iv, ciphertext, aad, tag_or_None) */
static mp_obj_t meterkit_c_gcm_decrypt(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    size_t iv_len, len, aad_len, tag_len = 0;
    const uint8_t *key = key_arg(args[0]);
    const uint8_t *iv = iv_arg(args[1], &iv_len);
    const uint8_t *in = buffer_arg(args[2], &len);
    const uint8_t *aad = buffer_arg(args[3], &aad_len);
    const uint8_t *tag = NULL;
    if (args[4] != mp_const_none) {
        tag = buffer_arg(args[4], &tag_len);
        if (tag_len == 0) {
            mp_raise_ValueError(MP_ERROR_TEXT("tag must be None or 4..16 bytes"));
        }
        check_tag_len(tag_len);
    }
    vstr_t plain;
    vstr_init_len(&plain, len);
    int rc = mk_gcm_decrypt(key, iv, iv_len, aad, aad_len, in, len, tag, tag_len,
                            (uint8_t *)plain.buf);
    if (rc != MK_OK && rc != MK_TAG_MISMATCH) {
        vstr_clear(&plain);
        mp_raise_ValueError(MP_ERROR_TEXT("gcm_decrypt: invalid arguments"));
    }
    mp_obj_t result[2] = {
        mp_obj_new_bytes_from_vstr(&plain),
        tag == NULL ? mp_const_none : mp_obj_new_bool(rc == MK_OK),
    };
    return mp_obj_new_tuple(2, result);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(meterkit_c_gcm_decrypt_obj, 5, 5, meterkit_c_gcm_decrypt);

/* gcm_encrypt(key, iv, plaintext, aad, tag_len) */
static mp_obj_t meterkit_c_gcm_encrypt(size_t n_args, const mp_obj_t *args) {
    (void)n_args;
    size_t iv_len, len, aad_len;
    const uint8_t *key = key_arg(args[0]);
    const uint8_t *iv = iv_arg(args[1], &iv_len);
    const uint8_t *in = buffer_arg(args[2], &len);
    const uint8_t *aad = buffer_arg(args[3], &aad_len);
    mp_int_t tag_len = mp_obj_get_int(args[4]);
    if (tag_len < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("tag_len must be 0 or 4..16"));
    }
    check_tag_len((size_t)tag_len);
    uint8_t tag[MK_TAG_MAX];
    vstr_t cipher;
    vstr_init_len(&cipher, len);
    int rc = mk_gcm_encrypt(key, iv, iv_len, aad, aad_len, in, len, (uint8_t *)cipher.buf,
                            tag, (size_t)tag_len);
    if (rc != MK_OK) {
        vstr_clear(&cipher);
        mp_raise_ValueError(MP_ERROR_TEXT("gcm_encrypt: invalid arguments"));
    }
    mp_obj_t result[2] = {
        mp_obj_new_bytes_from_vstr(&cipher),
        mp_obj_new_bytes(tag, (size_t)tag_len),
    };
    return mp_obj_new_tuple(2, result);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(meterkit_c_gcm_encrypt_obj, 5, 5, meterkit_c_gcm_encrypt);

/* The data[start:end] window without a copy; the same signature as meterkit.crc. */
static const uint8_t *crc_window(size_t n_args, const mp_obj_t *args, size_t *len) {
    size_t total;
    const uint8_t *data = buffer_arg(args[0], &total);
    mp_int_t start = n_args > 1 ? mp_obj_get_int(args[1]) : 0;
    mp_int_t end = n_args > 2 && args[2] != mp_const_none ? mp_obj_get_int(args[2]) : (mp_int_t)total;
    if (start < 0 || end < start || (size_t)end > total) {
        mp_raise_ValueError(MP_ERROR_TEXT("crc window outside the data"));
    }
    *len = (size_t)(end - start);
    return data + start;
}

static mp_obj_t meterkit_c_crc16_arc(size_t n_args, const mp_obj_t *args) {
    size_t len;
    const uint8_t *p = crc_window(n_args, args, &len);
    return MP_OBJ_NEW_SMALL_INT(mk_crc16_arc(p, len));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(meterkit_c_crc16_arc_obj, 1, 3, meterkit_c_crc16_arc);

static mp_obj_t meterkit_c_crc16_x25(size_t n_args, const mp_obj_t *args) {
    size_t len;
    const uint8_t *p = crc_window(n_args, args, &len);
    return MP_OBJ_NEW_SMALL_INT(mk_crc16_x25(p, len));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(meterkit_c_crc16_x25_obj, 1, 3, meterkit_c_crc16_x25);

static const mp_rom_map_elem_t meterkit_c_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_meterkit_c) },
    { MP_ROM_QSTR(MP_QSTR_gcm_decrypt), MP_ROM_PTR(&meterkit_c_gcm_decrypt_obj) },
    { MP_ROM_QSTR(MP_QSTR_gcm_encrypt), MP_ROM_PTR(&meterkit_c_gcm_encrypt_obj) },
    { MP_ROM_QSTR(MP_QSTR_crc16_arc), MP_ROM_PTR(&meterkit_c_crc16_arc_obj) },
    { MP_ROM_QSTR(MP_QSTR_crc16_x25), MP_ROM_PTR(&meterkit_c_crc16_x25_obj) },
};
static MP_DEFINE_CONST_DICT(meterkit_c_globals, meterkit_c_globals_table);

const mp_obj_module_t meterkit_c_user_cmodule = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&meterkit_c_globals,
};

MP_REGISTER_MODULE(MP_QSTR_meterkit_c, meterkit_c_user_cmodule);
