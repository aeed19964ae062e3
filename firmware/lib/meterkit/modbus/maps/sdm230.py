"""Eastron SDM230-Modbus single-phase meter.

Source: Eastron SDM230-Modbus Protocol (B+G e-tech "SDM230-register.pdf"), input registers,
function 04, IEEE 754 floats in two registers, high word first. The document gives no limit per
request; we keep to the lowest Eastron states for its meters (SDM72D-M: 30 parameters, 60
registers), which the single-phase map's longest run (12 registers) is far below.
"""
TABLE = """
model SDM230
maker Eastron
source Eastron SDM230-Modbus Protocol, input registers (function 04)
function 4
max_registers 60
line 9600 8N1
words big
# address type scale unit obis name
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
