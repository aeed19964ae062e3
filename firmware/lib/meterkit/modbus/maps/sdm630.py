"""Eastron SDM630-Modbus (V2, MID) three-phase meter.

Source: Eastron SDM630 Modbus Protocol (B+G e-tech "SDM630Register.pdf", the SDM630-Modbus V2
user manual section 1.2 "Modbus Protocol Input Registers"): function 04, each parameter an IEEE
754 float held in two consecutive registers, high word first; "each request for data must be
restricted to 40 parameters or less" (80 registers; exceeding it returns an exception). Factory
line: 9600 baud, one stop bit, no parity (holding register 40019 "Network Parity Stop" = 0).
"""
from .eastron import THREE_PHASE, THREE_PHASE_MORE

# phase angles, THD and per-phase energies: only the SDM630's document lists them
ONLY_SDM630 = """
0x0024 f32 0 deg 1-0:81.7.40 phase_angle_l1
0x0026 f32 0 deg 1-0:81.7.51 phase_angle_l2
0x0028 f32 0 deg 1-0:81.7.62 phase_angle_l3
0x00EA f32 0 % 1-0:32.7.124 thd_voltage_l1
0x00EC f32 0 % 1-0:52.7.124 thd_voltage_l2
0x00EE f32 0 % 1-0:72.7.124 thd_voltage_l3
0x00F0 f32 0 % 1-0:31.7.124 thd_current_l1
0x00F2 f32 0 % 1-0:51.7.124 thd_current_l2
0x00F4 f32 0 % 1-0:71.7.124 thd_current_l3
0x015A f32 0 kWh 1-0:21.8.0 energy_in_l1
0x015C f32 0 kWh 1-0:41.8.0 energy_in_l2
0x015E f32 0 kWh 1-0:61.8.0 energy_in_l3
0x0160 f32 0 kWh 1-0:22.8.0 energy_out_l1
0x0162 f32 0 kWh 1-0:42.8.0 energy_out_l2
0x0164 f32 0 kWh 1-0:62.8.0 energy_out_l3
"""

TABLE = """
model SDM630
maker Eastron
source Eastron SDM630 Modbus Protocol, input registers (function 04)
function 4
max_registers 80
line 9600 8N1
words big
""" + THREE_PHASE + THREE_PHASE_MORE + ONLY_SDM630
