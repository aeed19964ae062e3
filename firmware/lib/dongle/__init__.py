"""The firmware runtime: what runs on the dongle around the decoding core (MQTT, spool, config, ...).

Code of rare paths (startup, OTA, discovery, the web API) is imported when used and forgotten
afterwards: on the device a module's code sits in the heap while it is loaded, and the heap is
what a dongle runs short of.
"""
import os
import sys

# set by the loader through health.booted(); kept here because health itself comes and goes
BOOT = {"root": "", "version": None, "mode": "normal"}


def exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def unload(*names):
    """Forget dongle.<name> modules: their code goes back to the heap once nothing uses it."""
    for name in names:
        sys.modules.pop("dongle." + name, None)
        package, _, leaf = ("dongle." + name).rpartition(".")
        parent = sys.modules.get(package)
        if parent is not None and hasattr(parent, leaf):
            delattr(parent, leaf)


def lazy(module, function, *bound):
    """A callable for dongle.<module>.<function>(*bound, *args) that imports the module for the
    call and forgets it again. (A lambda written inside that module would keep it loaded.)"""
    def call(*args):
        found = getattr(__import__("dongle." + module, None, None, (function,)), function)
        try:
            return found(*(bound + args))
        finally:
            unload(module)
    return call
