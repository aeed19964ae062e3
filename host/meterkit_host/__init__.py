"""meterkit host companion: the same decoding core on a PC, plus the tools around it."""
