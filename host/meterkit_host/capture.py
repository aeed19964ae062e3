"""Decode a capture file to the decode contract's JSON lines.

This file runs unchanged on CPython (imported by the `meterkit decode` command) and on the
MicroPython unix port (run as a script by `--runtime micropython`), so both print the very same
lines from the very same core.

    micropython capture.py FILE [--key HEX] [--auth-key HEX] [--hex]
"""
import sys

from meterkit.stream import StreamDecoder, decode_chunks

CHUNK = 256   # feed in UART-sized pieces: the stream decoder must not care where chunks end


def unhex(text):
    """Hex text with any whitespace (line breaks, spaces) -> bytes; ValueError when not hex."""
    digits = "".join(text.split())
    if len(digits) % 2:
        raise ValueError("odd number of hex digits")
    return bytes(int(digits[i:i + 2], 16) for i in range(0, len(digits), 2))


def chunks_of(data):
    for i in range(0, len(data), CHUNK):
        yield data[i:i + CHUNK]


def file_chunks(path, is_hex):
    with open(path, "rb") as f:
        if is_hex:
            yield from chunks_of(unhex(f.read().decode()))
            return
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                return
            yield chunk


def run(path, key=None, auth_key=None, is_hex=False, write=print):
    decoder = StreamDecoder(key, auth_key)
    for line in decode_chunks(file_chunks(path, is_hex), decoder):
        write(line)
    return decoder


def _main(argv):
    opts = {"--key": None, "--auth-key": None}
    path, is_hex, i = None, False, 0
    while i < len(argv):
        arg = argv[i]
        if arg in opts:
            opts[arg] = unhex(argv[i + 1])
            i += 1
        elif arg == "--hex":
            is_hex = True
        else:
            path = arg
        i += 1
    run(path, opts["--key"], opts["--auth-key"], is_hex)


if __name__ == "__main__":
    try:
        _main(sys.argv[1:])
    except Exception as error:   # keep stdout clean for the JSON lines; say why on stderr
        sys.stderr.write("%s: %s\n" % (type(error).__name__, error))
        sys.exit(1)
