"""Build the portable C of firmware/cmodules/meterkit_c for the host.

    python tools/build_clib.py [--out build/clib] [--engine mbedtls|portable] [--sanitize] [--fuzzer]

* `build_library()` -> libmeterkit_c.so for ctypes (gcc, linked against Debian's libmbedcrypto,
  the same API ESP-IDF ships). `engine="portable"` forces the AES+own-GHASH engine that
  MicroPython's bundled mbedtls (no GCM) gets; `sanitize=True` adds ASan+UBSan.
* `build_fuzzer()` -> a libFuzzer binary (clang) over the C entry points.
* `load()` -> the built library through ctypes, with the mk_core.h signatures declared.
A missing compiler or library raises BuildError with the Debian package to install.
"""
import argparse
import ctypes
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODULE = ROOT / "firmware" / "cmodules" / "meterkit_c"
FUZZ_TARGET = ROOT / "firmware" / "cmodules" / "fuzz" / "fuzz_mk.c"
SOURCES = [MODULE / "mk_gcm.c", MODULE / "mk_crc.c"]

WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Wshadow", "-Werror"]
SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
              "-fno-omit-frame-pointer", "-g", "-O1"]
ENGINES = {"mbedtls": [], "portable": ["-DMK_GCM_PORTABLE"]}
PACKAGES = {"gcc": "gcc", "clang": "clang (and libclang-rt-14-dev for libFuzzer)"}


class BuildError(RuntimeError):
    pass


def compiler(name):
    path = shutil.which(name)
    if not path:
        raise BuildError("%s not found: apt-get install %s (listed in .ci/apt-packages)"
                         % (name, PACKAGES[name]))
    return path


def mbedtls_flags():
    """pkg-config where the distribution ships a .pc file, plain -lmbedcrypto otherwise."""
    try:
        proc = subprocess.run(["pkg-config", "--cflags", "--libs", "mbedcrypto"],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return proc.stdout.split()
    except FileNotFoundError:
        pass
    return ["-lmbedcrypto"]


def run_compiler(command):
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        hint = ""
        if "mbedtls" in proc.stderr:
            hint = "\nmbedtls missing? apt-get install libmbedtls-dev (listed in .ci/apt-packages)"
        if "libclang_rt.fuzzer" in proc.stderr or "fuzzer" in proc.stderr:
            hint += "\nlibFuzzer missing? apt-get install libclang-rt-14-dev"
        raise BuildError("build failed: %s\n%s%s" % (" ".join(command), proc.stderr[-3000:], hint))
    return proc


def build_library(out_dir, engine="mbedtls", sanitize=False):
    """Compile libmeterkit_c*.so into out_dir; return its path."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "libmeterkit_c-%s%s.so" % (engine, "-asan" if sanitize else "")
    target = out_dir / name
    flags = SANITIZERS if sanitize else ["-O2"]
    command = ([compiler("gcc"), "-shared", "-fPIC"] + WARNINGS + flags + ENGINES[engine]
               + ["-I", str(MODULE)] + [str(s) for s in SOURCES]
               + ["-o", str(target)] + mbedtls_flags())
    run_compiler(command)
    return target


def build_fuzzer(out_dir):
    """libFuzzer binary: portable engine, checked against mbedtls GCM and a bitwise CRC."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "fuzz_mk"
    command = ([compiler("clang"), "-fsanitize=fuzzer,address,undefined",
                "-fno-sanitize-recover=all", "-g", "-O1"] + WARNINGS + ENGINES["portable"]
               + ["-I", str(MODULE), str(FUZZ_TARGET)] + [str(s) for s in SOURCES]
               + ["-o", str(target)] + mbedtls_flags())
    run_compiler(command)
    return target


def load(library):
    """ctypes.CDLL of a built library with mk_core.h's argument and result types."""
    lib = ctypes.CDLL(str(library))
    size, buf, out = ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p
    lib.mk_gcm_decrypt.argtypes = [buf, buf, size, buf, size, buf, size, buf, size, out]
    lib.mk_gcm_encrypt.argtypes = [buf, buf, size, buf, size, buf, size, out, out, size]
    lib.mk_gcm_engine.restype = ctypes.c_char_p
    for crc in (lib.mk_crc16_arc, lib.mk_crc16_x25):
        crc.argtypes = [buf, size]
        crc.restype = ctypes.c_uint16
    return lib


def asan_runtime():
    """The libasan.so that gcc links against, for LD_PRELOAD into an uninstrumented python."""
    proc = subprocess.run([compiler("gcc"), "-print-file-name=libasan.so"],
                          capture_output=True, text=True)
    path = pathlib.Path(proc.stdout.strip())
    if not path.is_absolute() or not path.exists():
        raise BuildError("gcc has no libasan.so: apt-get install gcc (libasan comes with it)")
    return path.resolve()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "clib"))
    parser.add_argument("--engine", choices=sorted(ENGINES), default="mbedtls")
    parser.add_argument("--sanitize", action="store_true")
    parser.add_argument("--fuzzer", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.fuzzer:
            print(build_fuzzer(args.out))
        else:
            print(build_library(args.out, args.engine, args.sanitize))
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
