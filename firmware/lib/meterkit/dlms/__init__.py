"""DLMS/COSEM application layer: APDUs, A-XDR, COSEM objects."""
