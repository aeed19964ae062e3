"""Compress the dongle's web pages for flash: firmware/www/NAME -> build/www/NAME.gz.

The device never compresses anything; it sends NAME.gz with `Content-Encoding: gzip` as it is.
The output is reproducible (no timestamp or file name in the gzip header), so a rebuild of the
same pages gives the same bytes.

    python tools/build_www.py [--src firmware/www] [--out build/www]
"""
import argparse
import gzip
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = ROOT / "firmware" / "www"
SUFFIXES = (".html", ".js", ".css", ".svg", ".json", ".txt", ".ico", ".png")


def compress(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def build(src=SOURCE, out=ROOT / "build" / "www"):
    """Write every web file of src gzipped into out; returns [(name, raw size, gzip size)]."""
    src, out = pathlib.Path(src), pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob("*.gz"):
        stale.unlink()   # a page removed from the source must not linger on the device
    sizes = []
    for path in sorted(src.iterdir()):
        if path.suffix not in SUFFIXES:
            continue
        data = path.read_bytes()
        packed = compress(data)
        (out / (path.name + ".gz")).write_bytes(packed)
        sizes.append((path.name, len(data), len(packed)))
    return sizes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", default=str(SOURCE), help="the pages (default: firmware/www)")
    parser.add_argument("--out", default=str(ROOT / "build" / "www"), help="default: build/www")
    args = parser.parse_args(argv)
    sizes = build(args.src, args.out)
    for name, raw, packed in sizes:
        print("%-16s %6d -> %5d bytes" % (name, raw, packed))
    print("%-16s %6d -> %5d bytes in %s" % ("total", sum(s[1] for s in sizes),
                                             sum(s[2] for s in sizes), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
