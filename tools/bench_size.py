"""How big the app is on the device, and the heap it holds once imported, with and without freezing.

    .venv/bin/python tools/bench_size.py

1. Flash: the app compiled to .mpy for the ESP32 (mpy-cross -march=xtensawin, tools/build_mpy.py).
2. Heap held after import (gc.collect(), then gc.mem_alloc()), measured on the MicroPython unix
   port with the app compiled to .mpy (-march=x64):
   a. from .mpy files, as on stock firmware with the app copied onto the flash filesystem;
   b. frozen, estimated. The unix port can't freeze without a custom build, so the code's share
      is measured and taken out: the same modules are compiled with their whole body under an
      `if` that is never true, so importing them loads every function's bytecode, constants and
      qstrs (what freezing moves to flash) but runs nothing. heap(a) - heap(code) is what stays
      in RAM when frozen: module and class dicts, function objects, tables built at import.
"""
import ast
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import build_mpy  # noqa: E402

LIB = build_mpy.FIRMWARE / "lib"

# What the dongle imports, per use: the decoder alone for a plain P1 meter, for an encrypted DLMS
# meter (security + APDU layers load on first use), what stays loaded while the runtime reads a
# DSMR5 meter (the modules tests/test_runtime_memory.py's run holds), and the runtime with
# its setup-time and web modules and the DLMS decoder too.
SCENARIOS = (
    ("decoder, P1 meter", "from meterkit.stream import StreamDecoder\n"
                          "StreamDecoder(framings=('p1',))"),
    ("decoder, DLMS+GCM", "from meterkit.stream import StreamDecoder\n"
                          "StreamDecoder(bytes(16), framings=('hdlc', 'mbus')).apdu"),
    ("runtime, DSMR5", "import dongle.app, dongle.web, dongle.history\n"
                       "from meterkit.stream import StreamDecoder\n"
                       "StreamDecoder(framings=('p1',)).feed(b'/X5\\r\\n\\r\\n!0000\\r\\n')"),
    ("whole app", "import dongle.app, dongle.config, dongle.board, dongle.mqtt, dongle.web.http, dongle.web.api\n"
                  "from meterkit.stream import StreamDecoder\n"
                  "StreamDecoder(bytes(16)).apdu"),
)

# Runs on MicroPython after SETUP is defined: heap held by running it, and the app modules it
# loaded (the unix port's frozen asyncio and friends count to the heap, not to the list).
_MEASURE = """
import gc, sys
gc.collect()
before = gc.mem_alloc()
exec(SETUP)
gc.collect()
held = gc.mem_alloc() - before
print(held, ",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("meterkit", "dongle"))))
"""


def heap_after(tree, setup):
    """(bytes held after running `setup` with `tree` on the path, app modules it imported)."""
    env = dict(os.environ, MICROPYPATH="%s:.frozen" % tree)
    code = "SETUP = %r\n" % setup + _MEASURE
    proc = subprocess.run([build_mpy.micropython(), "-X", "heapsize=4m", "-c", code], env=env,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-2000:])
    held, loaded = proc.stdout.split()
    return int(held), loaded.split(",")


def never_run(source):
    """The module's source with its body (after the docstring) under an `if` that is never true."""
    module = ast.parse(source)
    body = module.body
    head = body[:1] if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else []
    rest = body[len(head):] or [ast.Pass()]
    test = ast.Compare(left=ast.Name(id="__name__", ctx=ast.Load()), ops=[ast.Eq()],
                       comparators=[ast.Constant(value="never")])
    module.body = head + [ast.If(test=test, body=rest, orelse=[])]
    return ast.unparse(ast.fix_missing_locations(module))


def build_code_only(out):
    """firmware/lib compiled (x64) with every module body left unrun: the code alone."""
    compiler = build_mpy.mpy_cross()
    with tempfile.TemporaryDirectory() as sources:
        for path in LIB.rglob("*.py"):
            rel = path.relative_to(LIB)
            src = pathlib.Path(sources) / rel
            src.parent.mkdir(parents=True, exist_ok=True)
            src.write_text(never_run(path.read_text()))
            target = (pathlib.Path(out) / rel).with_suffix(".mpy")
            target.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([compiler, "-march=x64", "-o", str(target), str(src)], check=True,
                           capture_output=True)


def mpy_sizes(tree):
    """(meterkit bytes, dongle bytes, other bytes, file count) of a built tree."""
    sizes = {"meterkit": 0, "dongle": 0}
    other = count = 0
    for path in pathlib.Path(tree).rglob("*"):
        if path.is_file():
            count += 1
            parts = path.relative_to(tree).parts
            key = parts[1] if len(parts) > 2 and parts[0] == "lib" else None
            if key in sizes:
                sizes[key] += path.stat().st_size
            else:
                other += path.stat().st_size
    return sizes["meterkit"], sizes["dongle"], other, count


def main():
    with tempfile.TemporaryDirectory() as work:
        work = pathlib.Path(work)
        total = build_mpy.build("xtensawin", work / "xtensawin")
        core, runtime, other, count = mpy_sizes(work / "xtensawin")
        print("app as .mpy for the ESP32 (xtensawin): %d files, %d bytes = %.1f KB"
              % (count, total, total / 1024))
        print("  meterkit core %.1f KB, dongle runtime %.1f KB, loader + gzipped web pages %d bytes"
              % (core / 1024, runtime / 1024, other))

        build_mpy.build("x64", work / "x64")
        build_code_only(work / "code")
        rows = []
        for label, setup in SCENARIOS:
            held, loaded = heap_after(work / "x64" / "lib", setup)
            code, _ = heap_after(work / "code", "".join("import %s\n" % m for m in loaded))
            rows.append((label, len(loaded), held, code))

    print("\nheap held after import, MicroPython unix port (64-bit: dicts, objects and GC blocks take up")
    print("to twice what they take on the 32-bit ESP32; bytecode takes the same):")
    print("  %-18s %8s %16s %11s %18s" % ("", "modules", "from .mpy files", "code share", "frozen (estimate)"))
    for label, n, held, code in rows:
        print("  %-18s %8d %13.1f KB %8.1f KB %15.1f KB" % (label, n, held / 1024, code / 1024,
                                                            (held - code) / 1024))
    print("  code share: heap held by the same modules loaded with their bodies never run (bytecode,")
    print("  constants, qstrs: what freezing keeps in flash); frozen = from .mpy files - code share.")


if __name__ == "__main__":
    main()
