"""ABB B23 (and B21/B24) MID meter: integer registers with fixed decimal resolutions.

Source: ABB B-series (B21, B23, B24) user manual, chapter "Communication with Modbus", the
register mapping tables (holding registers, function 03; quantities as 16/32/64-bit integers,
high word first, a resolution per quantity; the type's largest value, e.g. 0xFFFFFFFF unsigned
or 0x7FFFFFFF signed, means "not available"), as also read by volkszaehler/mbmd
(meters/rs485/abb.go). The manual states no lower limit per request than Modbus' 125 registers.
Factory line: 19200 8E1.
"""
TABLE = """
model B23
maker ABB
source ABB B-series user manual, Communication with Modbus, holding registers (function 03)
function 3
max_registers 125
line 19200 8E1
words big
missing max
# address type scale unit obis name
0x5000 u64 -2 kWh 1-0:1.8.0 energy_in
0x5004 u64 -2 kWh 1-0:2.8.0 energy_out
0x5460 u64 -2 kWh 1-0:21.8.0 energy_in_l1
0x5464 u64 -2 kWh 1-0:41.8.0 energy_in_l2
0x5468 u64 -2 kWh 1-0:61.8.0 energy_in_l3
0x546C u64 -2 kWh 1-0:22.8.0 energy_out_l1
0x5470 u64 -2 kWh 1-0:42.8.0 energy_out_l2
0x5474 u64 -2 kWh 1-0:62.8.0 energy_out_l3
0x5B00 u32 -1 V 1-0:32.7.0 voltage_l1
0x5B02 u32 -1 V 1-0:52.7.0 voltage_l2
0x5B04 u32 -1 V 1-0:72.7.0 voltage_l3
0x5B0C u32 -2 A 1-0:31.7.0 current_l1
0x5B0E u32 -2 A 1-0:51.7.0 current_l2
0x5B10 u32 -2 A 1-0:71.7.0 current_l3
0x5B14 s32 -2 W 1-0:1.7.0/1-0:2.7.0 power_in/power_out
0x5B16 s32 -2 W 1-0:21.7.0/1-0:22.7.0 power_in_l1/power_out_l1
0x5B18 s32 -2 W 1-0:41.7.0/1-0:42.7.0 power_in_l2/power_out_l2
0x5B1A s32 -2 W 1-0:61.7.0/1-0:62.7.0 power_in_l3/power_out_l3
0x5B2C u16 -2 Hz 1-0:14.7.0 frequency
0x5B3A s16 -3 - 1-0:13.7.0 power_factor
0x5B3B s16 -3 - 1-0:33.7.0 power_factor_l1
0x5B3C s16 -3 - 1-0:53.7.0 power_factor_l2
0x5B3D s16 -3 - 1-0:73.7.0 power_factor_l3
"""
