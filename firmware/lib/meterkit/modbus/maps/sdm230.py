"""Eastron SDM230-Modbus single-phase meter.

Source: Eastron SDM230-Modbus Protocol (B+G e-tech "SDM230-register.pdf"), input registers,
function 04, IEEE 754 floats in two registers, high word first. The document gives no limit per
request; we keep to the lowest Eastron states for its meters (SDM72D-M: 30 parameters, 60
registers), which the single-phase map's longest run (12 registers) is far below.
"""
from .eastron import SINGLE_PHASE

TABLE = """
model SDM230
maker Eastron
source Eastron SDM230-Modbus Protocol, input registers (function 04)
function 4
max_registers 60
line 9600 8N1
words big
""" + SINGLE_PHASE
