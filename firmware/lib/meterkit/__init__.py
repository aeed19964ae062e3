"""meterkit decoding core: portable between MicroPython (the dongle) and CPython (the host).

No machine, network, sockets, files or threads in here: bytes in, Readings out.
"""
VERSION = "0.1.0"

# Set to True before importing any layer to force the plain-Python paths everywhere (no C module,
# viper, fastcrc or cryptography): benchmarks compare the paths, tests prove they agree.
PURE_PYTHON = False
