# USER_C_MODULES entry for CMake ports: lists meterkit's C modules.
include(${CMAKE_CURRENT_LIST_DIR}/meterkit_c/micropython.cmake)
