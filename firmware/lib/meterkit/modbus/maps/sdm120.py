"""Eastron SDM120-Modbus single-phase DIN-rail meter.

Source: Eastron SDM120-Modbus user manual, "Modbus Protocol Input Registers" (function 04),
IEEE 754 floats in two registers, high word first. No limit per request is stated; 60 registers
as for the SDM230 (see sdm230.py).
"""
from .eastron import SINGLE_PHASE

TABLE = """
model SDM120
maker Eastron
source Eastron SDM120-Modbus user manual, input registers (function 04)
function 4
max_registers 60
line 2400 8N1
words big
""" + SINGLE_PHASE
