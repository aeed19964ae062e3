"""Which implementation each hot path runs on this runtime, for diagnostics and the status page.

    backends() -> [("gcm", "viper"), ("crc", "viper"), ("p1_scan", "viper")]

Names: "cmodule" (the meterkit_c module of a custom firmware), "viper" (MicroPython native code),
"cpython" / "fastcrc" (host libraries), "python" (the plain loops that run everywhere).
"""
import sys

# (what, module that chooses the implementation at import and names it in BACKEND), in a fixed
# order: MicroPython dicts are unordered.
PATHS = (("gcm", "meterkit.crypto.gcm"), ("crc", "meterkit.crc"), ("p1_scan", "meterkit.link.p1"),
         ("hdlc", "meterkit.link.hdlc"))
NOT_LOADED = "not loaded"


def backends(load=True):
    """[(what, backend name)] in PATHS order. load=False leaves modules the dongle never imported
    alone (each costs heap on the ESP32) and reports them as "not loaded"."""
    return [(what, _backend(module, load)) for what, module in PATHS]


def _backend(name, load):
    module = sys.modules.get(name)
    if module is None:
        if not load:
            return NOT_LOADED
        module = __import__(name, None, None, ("BACKEND",))
    return module.BACKEND


def summary(load=True):
    """One line for a log or the status page: 'gcm=viper crc=viper p1_scan=viper'."""
    return " ".join("%s=%s" % pair for pair in backends(load))
