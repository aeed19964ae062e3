# meterkit_c for the CMake-based ports (esp32, rp2). On ESP32 the sources are compiled into the
# firmware's main component, which already requires ESP-IDF's mbedtls (MBEDTLS_GCM_C is on by
# default there, so mk_gcm.c uses mbedtls GCM with the hardware AES).
add_library(usermod_meterkit_c INTERFACE)

target_sources(usermod_meterkit_c INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/modmeterkit_c.c
    ${CMAKE_CURRENT_LIST_DIR}/mk_gcm.c
    ${CMAKE_CURRENT_LIST_DIR}/mk_crc.c
)

target_include_directories(usermod_meterkit_c INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
)

target_link_libraries(usermod INTERFACE usermod_meterkit_c)
