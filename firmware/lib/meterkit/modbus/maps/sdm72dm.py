"""Eastron SDM72D-M (V2) three-phase DIN-rail meter.

Source: Eastron SDM72D-M user manual, "PART 3 Modbus Protocol" (V1.1 and V1.5: function 04,
floats in two consecutive registers; "each request for data must be restricted to 30 parameters
or less", i.e. 60 registers) and the SDM72D-M-V2 manual's input register table for the
per-phase values the first version did not have.
"""
from .eastron import THREE_PHASE

TABLE = """
model SDM72D-M
maker Eastron
source Eastron SDM72D-M user manual, Part 3 Modbus Protocol, input registers (function 04)
function 4
max_registers 60
line 9600 8N1
words big
""" + THREE_PHASE
