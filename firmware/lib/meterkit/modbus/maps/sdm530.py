"""Eastron SDM530-Modbus three-phase meter (the founding system's meter).

Source: Eastron SDM530-Modbus Protocol (input registers, function 04): the SDM630's layout for
the quantities listed here, IEEE 754 floats in two registers, high word first, at most 40
parameters (80 registers) per request. THD and per-phase energies are left out: the SDM530's
document does not list them.
"""
from .eastron import THREE_PHASE, THREE_PHASE_MORE

TABLE = """
model SDM530
maker Eastron
source Eastron SDM530-Modbus Protocol, input registers (function 04)
function 4
max_registers 80
line 9600 8N1
words big
""" + THREE_PHASE + THREE_PHASE_MORE
