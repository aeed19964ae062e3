# meterkit_c for the make-based ports (unix, stm32, ...): USER_C_MODULES=<repo>/firmware/cmodules
# mbedtls headers and config come from the port's own SSL build (MICROPY_SSL_MBEDTLS=1); its
# bundled config has AES but no GCM, so mk_gcm.c picks its own GHASH there (see mk_gcm.c).
METERKIT_C_DIR := $(USERMOD_DIR)

SRC_USERMOD_C += $(METERKIT_C_DIR)/modmeterkit_c.c
SRC_USERMOD_C += $(METERKIT_C_DIR)/mk_gcm.c
SRC_USERMOD_C += $(METERKIT_C_DIR)/mk_crc.c

CFLAGS_USERMOD += -I$(METERKIT_C_DIR)
