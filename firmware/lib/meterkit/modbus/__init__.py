"""Modbus RTU: the master's codec (rtu.py), exact float32 decimals (float32.py),
meter register maps as data (regmap.py, maps/), and the polling plan (poll.py).

Pure Python shared by the dongle and the host, like the rest of the core: bytes in and out, no
serial ports, sockets or threads (dongle/modbus_reader.py and meterkit_host/modbus_source.py
drive a real bus with it)."""
