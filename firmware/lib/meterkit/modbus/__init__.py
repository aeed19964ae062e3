"""Modbus RTU: the master's codec (rtu.py), exact register values (float32.py, values.py),
meter register maps as data (regmap.py, maps/), and the polling plan (poll.py).

Pure Python shared by the dongle and the host, like the rest of the core: bytes in and out, no
serial ports, sockets or threads (dongle/modbus_reader.py and meterkit_host/modbus_source.py
drive a real bus with it)."""
