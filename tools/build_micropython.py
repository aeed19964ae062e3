"""`make micropython`: the MicroPython unix port built from source, app frozen, meterkit_c linked.

    python3 tools/build_micropython.py [--micropython DIR] [--only TARGET] [--jobs 2]

Builds mpy-cross, then ports/unix (VARIANT=standard) twice, out of the source tree (BUILD= folders
under build/micropython/, so a read-only checkout works):

    unix64/micropython         64-bit, as the PyPI wheel the rest of the suite runs
    unix32/micropython         32-bit x86 (gcc -m32): pointers, object headers and GC blocks the
                               size they are on the ESP32, so its heap figures are the device's
    unix32-stock/micropython   32-bit, nothing of ours in it: a stock firmware, for the app as
                               .mpy files (`meterkit deploy`'s path)

unix64 and unix32 freeze firmware/manifest_unix.py (the standard variant's manifest +
firmware/manifest.py, the app list the ESP32 boards freeze too) and link firmware/cmodules
(USER_C_MODULES). The viper code is frozen for the machine it runs on (MPY_CROSS_FLAGS=-march=x64
/ x86). ffi is left out (MICROPY_PY_FFI=0): the app does not use it and a 32-bit build would need
an i386 libffi.

MICROPY_DIR (or --micropython) picks the source, default ../shared/micropython. A build is
skipped ("up to date") while a hash of the source tree, the manifests, firmware/lib,
firmware/cmodules and this script is unchanged; a changed source tree starts from scratch, a
changed app rebuilds incrementally (make's own dependencies). Stdlib only.
"""
import argparse
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
OUT = ROOT / "build" / "micropython"
DEFAULT_SOURCE = ROOT.parent / "shared" / "micropython"
MICROPYTHON_GIT = "https://github.com/micropython/micropython"
KNOWN_GOOD = "1c3c201149f37fe8d81246191b3127bb198d6306"   # master, 2026-08-19, v1.29.0-preview
APP_MANIFEST = FIRMWARE / "manifest.py"
UNIX_MANIFEST = FIRMWARE / "manifest_unix.py"
C_MODULES = FIRMWARE / "cmodules"
# git submodules the unix port builds from (a fresh clone has them empty)
SUBMODULES = ("lib/micropython-lib", "lib/mbedtls", "lib/berkeley-db-1.xx")
# 32-bit: gcc -m32 (Debian's gcc-multilib), linked static so the binary needs no i386 C library
# at run time. (MICROPY_FORCE_32BIT=1 did this until v1.27; MicroPython has retired it.)
# unix32-stock is the stock firmware's counterpart: no app frozen, no meterkit_c. The app loaded
# from .mpy files is measured there, because a build with the app frozen already has the app's
# qstrs in ROM and would leave out the ~16 KB they take in the heap of a stock firmware.
_M32 = ["CFLAGS_EXTRA=-m32", "LDFLAGS_EXTRA=-m32 -static"]
TARGETS = {
    "unix64": {"arch": "x64", "flags": [], "make": [], "app": True},
    "unix32": {"arch": "x86", "flags": ["-m32"], "make": _M32, "app": True},
    "unix32-stock": {"arch": "x86", "flags": ["-m32"], "make": _M32, "app": False},
}
STAMP = ".meterkit-build.json"


def app_modules(manifest=UNIX_MANIFEST, variables=None):
    """The app modules a manifest freezes, e.g. ['dongle', 'dongle.app', ...]: its freeze()
    calls and those of the manifests it includes, leaving out the port's own ($(PORT_DIR),
    $(MPY_DIR)). The subset of MicroPython's manifest API that ours use; stdlib only."""
    found = []

    def resolve(path):
        for name, value in (variables or {}).items():
            path = path.replace("$(%s)" % name, str(value))
        return manifest.parent / path

    def include(path, **options):
        if "$(PORT_DIR)" not in path and "$(MPY_DIR)" not in path:
            found.extend(app_modules(resolve(path).resolve(), variables))

    def freeze(path, script=None, opt=None):
        base = resolve(path)
        if script is None:
            files = sorted(p.relative_to(base) for p in base.rglob("*.py"))
        else:
            files = [pathlib.Path(s) for s in ([script] if isinstance(script, str) else script)]
        for rel in files:
            parts = rel.with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))

    exec(compile(manifest.read_text(), str(manifest), "exec"),
         {"include": include, "freeze": freeze})
    return sorted(found)


def app_summary(manifest=UNIX_MANIFEST, variables=None):
    """One line naming what a firmware manifest freezes of the app: the same line for the unix
    build and every ESP32 board, or they freeze different apps."""
    modules = app_modules(manifest, variables)
    return "frozen app: %d modules (%s)" % (
        len(modules), hashlib.sha256(" ".join(modules).encode()).hexdigest()[:12])


class NotReady(Exception):
    """Something the build needs is missing; the message says what to do about it."""


def clone_hint():
    return ("git clone %s && git -C micropython checkout %s && make -C micropython/ports/unix "
            "submodules, then make micropython MICROPY_DIR=$PWD/micropython (that commit, "
            "v1.29.0-preview, is known to work)" % (MICROPYTHON_GIT, KNOWN_GOOD))


def source_dir(path):
    """The MicroPython checkout, checked for what the unix build needs."""
    checkout = pathlib.Path(path).expanduser().resolve() if path else DEFAULT_SOURCE.resolve()
    if not checkout.is_dir():
        raise NotReady("no MicroPython source at %s (MICROPY_DIR): %s" % (checkout, clone_hint()))
    for need in ("py/mpconfig.h", "mpy-cross/Makefile", "ports/unix/Makefile",
                 "tools/makemanifest.py"):
        if not (checkout / need).is_file():
            raise NotReady("%s is not a MicroPython checkout (no %s): %s"
                           % (checkout, need, clone_hint()))
    empty = [sub for sub in SUBMODULES
             if not (checkout / sub).is_dir() or not any((checkout / sub).iterdir())]
    if empty:
        raise NotReady("%s lacks the submodules %s: make -C %s submodules"
                       % (checkout, ", ".join(empty), checkout / "ports" / "unix"))
    return checkout


def check_compiler(target, work):
    """gcc can build and link a static program for the target (-m32: gcc-multilib)."""
    flags = TARGETS[target]["flags"]
    source = work / "probe.c"
    source.write_text("int main(void) { return 0; }\n")
    try:
        proc = subprocess.run(["gcc"] + flags + ["-static", "-o", str(work / "probe"), str(source)],
                              capture_output=True, text=True)
    except OSError:
        proc = None
    if proc is None or proc.returncode:
        package = "gcc-multilib" if flags else "gcc"
        raise NotReady("%s needs gcc %s: apt-get install %s" % (target, " ".join(flags), package))


def _hash_tree(digest, folder, skip=()):
    for dirpath, dirnames, filenames in os.walk(str(folder)):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("build"))
        for name in sorted(filenames):
            path = pathlib.Path(dirpath, name)
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            digest.update(path.read_bytes() if not path.is_symlink() else b"link")


def source_hash(checkout):
    digest = hashlib.sha256()
    _hash_tree(digest, checkout, skip=(".git", "__pycache__"))
    return digest.hexdigest()


def app_hash():
    """What an incremental rebuild follows: the app, the manifests, the C module, this script."""
    digest = hashlib.sha256()
    for folder in (FIRMWARE / "lib", C_MODULES):
        _hash_tree(digest, folder, skip=("__pycache__",))
    for path in (APP_MANIFEST, UNIX_MANIFEST, pathlib.Path(__file__).resolve()):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def mpy_cross_path():
    return OUT / "mpy-cross" / "mpy-cross"


def binary(target):
    """Where `make micropython` puts the target's binary."""
    return OUT / target / "micropython"


def make_args(target, build):
    spec = TARGETS[target]
    app = ["FROZEN_MANIFEST=%s" % UNIX_MANIFEST, "USER_C_MODULES=%s" % C_MODULES]
    return ["VARIANT=standard", "BUILD=%s" % build] + (app if spec["app"] else []) + [
        "MPY_CROSS_FLAGS=-march=%s" % spec["arch"], "MICROPY_MPYCROSS=%s" % mpy_cross_path(),
        "MICROPY_PY_FFI=0"] + spec["make"]


def steps(checkout, targets, jobs):
    """[(name, build folder, argv)]: mpy-cross first, then each unix target."""
    make = ["make", "-j%d" % jobs]
    plan = [("mpy-cross", OUT / "mpy-cross",
             make + ["-C", str(checkout / "mpy-cross"), "BUILD=%s" % (OUT / "mpy-cross")])]
    for target in targets:
        plan.append((target, OUT / target, make + ["-C", str(checkout / "ports" / "unix")] +
                     make_args(target, OUT / target)))
    return plan


def read_stamp(build):
    try:
        return json.loads((build / STAMP).read_text())
    except (OSError, ValueError):
        return {}


def backends_of(path):
    """What the built binary's meterkit picks (frozen modules only: MICROPYPATH is .frozen)."""
    env = dict(os.environ, MICROPYPATH=".frozen")
    proc = subprocess.run([str(path), "-c", "from meterkit import backends\n"
                           "print(backends.summary())"], env=env, capture_output=True, text=True,
                          timeout=60)
    return (proc.stdout + proc.stderr).strip()


def build(checkout, targets, jobs=2, log=print):
    """Build what is out of date; returns {target: binary}."""
    with tempfile.TemporaryDirectory() as work:
        for target in targets:
            check_compiler(target, pathlib.Path(work))
    source = source_hash(checkout)
    env = dict(os.environ)
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"):   # ours, not the port's
        env.pop(name, None)
    log("make micropython: " + app_summary())
    built = {}
    for name, folder, argv in steps(checkout, targets, jobs):
        # make follows the files but not the flags: another source tree or other arguments
        # start from scratch, a changed app is make's to rebuild
        fresh = {"source": source, "argv": [a for a in argv if not a.startswith("-j")]}
        wanted = dict(fresh, app=app_hash() if TARGETS.get(name, {}).get("app") else None)
        result = mpy_cross_path() if name == "mpy-cross" else binary(name)
        stamp = read_stamp(folder)
        if stamp == wanted and result.is_file():
            log("make micropython: %s up to date (%s)" % (name, result.relative_to(ROOT)))
        else:
            if any(stamp.get(key) != value for key, value in fresh.items()) and folder.exists():
                shutil.rmtree(str(folder))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / STAMP).unlink(missing_ok=True)   # a build that fails stays out of date
            log("make micropython: building %s\n  %s" % (name, " ".join(argv)))
            proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True)
            (folder / "build.log").write_text(proc.stdout)
            if proc.returncode or not result.is_file():
                raise RuntimeError("building %s failed (%s):\n%s"
                                   % (name, folder / "build.log", proc.stdout[-4000:]))
            (folder / STAMP).write_text(json.dumps(wanted))
        if name in TARGETS:
            built[name] = result
            if TARGETS[name]["app"]:
                log("  %s: %s" % (name, backends_of(result)))
    return built


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micropython", default=os.environ.get("MICROPY_DIR", ""),
                        help="MicroPython source (MICROPY_DIR; default ../shared/micropython)")
    parser.add_argument("--only", choices=sorted(TARGETS), action="append",
                        help="build only this target (again for more)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        checkout = source_dir(args.micropython)
        build(checkout, args.only or list(TARGETS), args.jobs)
    except NotReady as problem:
        print("make micropython: %s" % problem, file=sys.stderr)
        return 2
    except RuntimeError as failure:
        print("make micropython: %s" % failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
