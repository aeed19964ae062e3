"""meterkit decoding core: portable between MicroPython (the dongle) and CPython (the host).

No machine, network, sockets, files or threads in here: bytes in, Readings out.
"""
VERSION = "0.1.0"
