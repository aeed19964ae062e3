"""Eastron's input register layout (function 04, IEEE 754 floats in two registers, high word
first). An address means the same quantity on every Eastron meter of a kind: the SDM72D-M, SDM530
and SDM630 protocol documents agree row for row where they list a quantity, as do the SDM120 and
SDM230's. A model's map is its header and the rows its document lists (regmap.parse keeps
registers in address order, so the rows may be joined in any order).
"""
# address type scale unit obis name (regmap's columns)

# The SDM120 and SDM230 (single phase).
SINGLE_PHASE = """
0x0000 f32 0 V 1-0:32.7.0 voltage_l1
0x0006 f32 0 A 1-0:31.7.0 current_l1
0x000C f32 0 W 1-0:1.7.0/1-0:2.7.0 power_in/power_out
0x0012 f32 0 VA 1-0:9.7.0 apparent_power
0x0018 f32 0 var 1-0:3.7.0/1-0:4.7.0 reactive_power_in/reactive_power_out
0x001E f32 0 - 1-0:13.7.0 power_factor
0x0024 f32 0 deg 1-0:81.7.40 phase_angle_l1
0x0046 f32 0 Hz 1-0:14.7.0 frequency
0x0048 f32 0 kWh 1-0:1.8.0 energy_in
0x004A f32 0 kWh 1-0:2.8.0 energy_out
0x004C f32 0 kvarh 1-0:3.8.0 reactive_energy_in
0x004E f32 0 kvarh 1-0:4.8.0 reactive_energy_out
0x0156 f32 0 kWh 1-0:15.8.0 energy_total
"""

# Every three-phase model: phases, totals, frequency, active energies, total energy.
THREE_PHASE = """
0x0000 f32 0 V 1-0:32.7.0 voltage_l1
0x0002 f32 0 V 1-0:52.7.0 voltage_l2
0x0004 f32 0 V 1-0:72.7.0 voltage_l3
0x0006 f32 0 A 1-0:31.7.0 current_l1
0x0008 f32 0 A 1-0:51.7.0 current_l2
0x000A f32 0 A 1-0:71.7.0 current_l3
0x000C f32 0 W 1-0:21.7.0/1-0:22.7.0 power_in_l1/power_out_l1
0x000E f32 0 W 1-0:41.7.0/1-0:42.7.0 power_in_l2/power_out_l2
0x0010 f32 0 W 1-0:61.7.0/1-0:62.7.0 power_in_l3/power_out_l3
0x0012 f32 0 VA 1-0:29.7.0 apparent_power_l1
0x0014 f32 0 VA 1-0:49.7.0 apparent_power_l2
0x0016 f32 0 VA 1-0:69.7.0 apparent_power_l3
0x0018 f32 0 var 1-0:23.7.0/1-0:24.7.0 reactive_power_in_l1/reactive_power_out_l1
0x001A f32 0 var 1-0:43.7.0/1-0:44.7.0 reactive_power_in_l2/reactive_power_out_l2
0x001C f32 0 var 1-0:63.7.0/1-0:64.7.0 reactive_power_in_l3/reactive_power_out_l3
0x001E f32 0 - 1-0:33.7.0 power_factor_l1
0x0020 f32 0 - 1-0:53.7.0 power_factor_l2
0x0022 f32 0 - 1-0:73.7.0 power_factor_l3
0x0034 f32 0 W 1-0:1.7.0/1-0:2.7.0 power_in/power_out
0x0038 f32 0 VA 1-0:9.7.0 apparent_power
0x003C f32 0 var 1-0:3.7.0/1-0:4.7.0 reactive_power_in/reactive_power_out
0x003E f32 0 - 1-0:13.7.0 power_factor
0x0046 f32 0 Hz 1-0:14.7.0 frequency
0x0048 f32 0 kWh 1-0:1.8.0 energy_in
0x004A f32 0 kWh 1-0:2.8.0 energy_out
0x0156 f32 0 kWh 1-0:15.8.0 energy_total
"""

# The SDM530 and SDM630 also list these; the SDM72D-M's documents do not.
THREE_PHASE_MORE = """
0x0030 f32 0 A 1-0:90.7.0 current_sum
0x004C f32 0 kvarh 1-0:3.8.0 reactive_energy_in
0x004E f32 0 kvarh 1-0:4.8.0 reactive_energy_out
0x00E0 f32 0 A 1-0:91.7.0 current_n
"""
