"""AES-128-GCM on CPython through the `cryptography` package (OpenSSL).

GCM decryption is streamed: the plaintext comes out of update() before the tag is checked, which
is what the security layer needs (it diagnoses a wrong key from the plaintext even when the tag
fails). DLMS tags are 12 bytes, so the minimum tag length is lowered from AESGCM's fixed 16.
"""
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def decrypt(key, iv, ciphertext, aad=b"", tag=None):
    if tag is None:
        # encryption only: AES-CTR from J0 + 1 (IV || 00000002), which is GCM without the tag
        ctr = Cipher(algorithms.AES(bytes(key)), modes.CTR(bytes(iv) + b"\x00\x00\x00\x02")).decryptor()
        return ctr.update(bytes(ciphertext)) + ctr.finalize(), None
    gcm = Cipher(algorithms.AES(bytes(key)), modes.GCM(bytes(iv), min_tag_length=4)).decryptor()
    gcm.authenticate_additional_data(bytes(aad))
    plaintext = gcm.update(bytes(ciphertext))
    try:
        gcm.finalize_with_tag(bytes(tag))  # OpenSSL compares in constant time
    except InvalidTag:
        return plaintext, False
    return plaintext, True


def encrypt(key, iv, plaintext, aad=b"", tag_len=12):
    gcm = Cipher(algorithms.AES(bytes(key)), modes.GCM(bytes(iv))).encryptor()
    gcm.authenticate_additional_data(bytes(aad))
    ciphertext = gcm.update(bytes(plaintext)) + gcm.finalize()
    return ciphertext, gcm.tag[:tag_len]
