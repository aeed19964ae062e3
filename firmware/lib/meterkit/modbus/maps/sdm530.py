"""Eastron SDM530-Modbus three-phase meter (the founding system's meter).

Source: Eastron SDM530-Modbus Protocol (input registers, function 04): the SDM630's layout for
the quantities listed here, IEEE 754 floats in two registers, high word first, at most 40
parameters (80 registers) per request. THD and per-phase energies are left out: the SDM530's
document does not list them.
"""
TABLE = """
model SDM530
maker Eastron
source Eastron SDM530-Modbus Protocol, input registers (function 04)
function 4
max_registers 80
line 9600 8N1
words big
# address type scale unit obis name
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
0x0030 f32 0 A 1-0:90.7.0 current_sum
0x0034 f32 0 W 1-0:1.7.0/1-0:2.7.0 power_in/power_out
0x0038 f32 0 VA 1-0:9.7.0 apparent_power
0x003C f32 0 var 1-0:3.7.0/1-0:4.7.0 reactive_power_in/reactive_power_out
0x003E f32 0 - 1-0:13.7.0 power_factor
0x0046 f32 0 Hz 1-0:14.7.0 frequency
0x0048 f32 0 kWh 1-0:1.8.0 energy_in
0x004A f32 0 kWh 1-0:2.8.0 energy_out
0x004C f32 0 kvarh 1-0:3.8.0 reactive_energy_in
0x004E f32 0 kvarh 1-0:4.8.0 reactive_energy_out
0x00E0 f32 0 A 1-0:91.7.0 current_n
0x0156 f32 0 kWh 1-0:15.8.0 energy_total
"""
