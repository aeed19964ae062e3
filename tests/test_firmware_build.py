"""The custom-firmware pieces: board definitions, `make firmware`'s early failures and its build
steps, backends() on both runtimes, and the helpers behind the size and profile figures.

ESP-IDF and a MicroPython checkout are not on this machine, so `make firmware` is tested for what it
must do here: stop before building and say what is missing.
"""
import ast
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import ROOT, run_micropython

sys.path.insert(0, str(ROOT / "tools"))
import build_firmware  # noqa: E402
import build_micropython  # noqa: E402
import bench_size  # noqa: E402

BOARDS = sorted(p.parent for p in (ROOT / "boards").glob("*/board.json"))
# The pins UART0 (the REPL) uses by default on each chip.
UART0_PINS = {"esp32": (1, 3), "esp32c3": (20, 21)}


def make_firmware(tmp_path, **variables):
    env = dict(os.environ)
    for name in ("IDF_PATH", "MICROPY_DIR"):   # a user who set neither (CI sets MICROPY_DIR)
        env.pop(name, None)
    env.update(variables.pop("env", {}))
    args = ["make", "-s", "--no-print-directory", "firmware"] + ["%s=%s" % kv for kv in variables.items()]
    return subprocess.run(args, cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=60)


def fake_checkout(tmp_path):
    """The two files that tell a MicroPython checkout apart (nothing gets built from it)."""
    checkout = tmp_path / "micropython"
    (checkout / "ports" / "esp32").mkdir(parents=True)
    (checkout / "py").mkdir()
    (checkout / "ports" / "esp32" / "Makefile").write_text("")
    (checkout / "py" / "mpconfig.h").write_text("")
    return checkout


def fake_idf(tmp_path):
    """An IDF_PATH with tools/idf.py and a PATH that finds idf.py, as export.sh leaves them."""
    idf = tmp_path / "esp-idf"
    (idf / "tools").mkdir(parents=True)
    script = idf / "tools" / "idf.py"
    script.write_text("#!/bin/sh\nexit 1\n")
    script.chmod(0o755)
    return {"IDF_PATH": str(idf), "PATH": "%s:%s" % (idf / "tools", os.environ["PATH"])}


# ---- make firmware: fails early, says why ------------------------------------------------------

def test_make_firmware_without_a_board_lists_the_boards(tmp_path):
    proc = make_firmware(tmp_path)
    assert proc.returncode != 0
    assert "choose a board" in proc.stderr
    for board in BOARDS:
        assert board.name in proc.stderr


def test_make_firmware_rejects_an_unknown_board(tmp_path):
    proc = make_firmware(tmp_path, BOARD="esp8266-nope", MICROPY_DIR=str(tmp_path))
    assert proc.returncode != 0
    assert "unknown board 'esp8266-nope'" in proc.stderr and "esp32-p1" in proc.stderr


def test_make_firmware_without_micropython_dir(tmp_path):
    proc = make_firmware(tmp_path, BOARD="esp32-p1")
    assert proc.returncode != 0
    assert "MICROPY_DIR is not set" in proc.stderr and "git clone" in proc.stderr


@pytest.mark.parametrize("where", ["missing", "not-a-checkout"])
def test_make_firmware_with_a_wrong_micropython_dir(tmp_path, where):
    path = tmp_path / where
    if where != "missing":
        path.mkdir()
    proc = make_firmware(tmp_path, BOARD="esp32-p1", MICROPY_DIR=str(path))
    assert proc.returncode != 0
    expected = "does not exist" if where == "missing" else "is not a MicroPython checkout"
    assert expected in proc.stderr


def test_make_firmware_without_esp_idf(tmp_path):
    proc = make_firmware(tmp_path, BOARD="esp32-p1", MICROPY_DIR=str(fake_checkout(tmp_path)))
    assert proc.returncode != 0
    assert "IDF_PATH is unset" in proc.stderr and "export.sh" in proc.stderr


def test_make_firmware_with_idf_path_but_no_idf_py(tmp_path):
    env = {"IDF_PATH": str(tmp_path)}
    proc = make_firmware(tmp_path, BOARD="esp32-p1", MICROPY_DIR=str(fake_checkout(tmp_path)), env=env)
    assert proc.returncode != 0
    assert "holds no tools/idf.py" in proc.stderr


def test_make_firmware_with_idf_not_exported(tmp_path):
    idf = fake_idf(tmp_path)
    env = {"IDF_PATH": idf["IDF_PATH"], "PATH": "/usr/bin:/bin"}
    proc = make_firmware(tmp_path, BOARD="esp32-p1", MICROPY_DIR=str(fake_checkout(tmp_path)), env=env)
    assert proc.returncode != 0
    assert "idf.py is not on PATH" in proc.stderr


def test_build_steps_once_everything_is_in_place(tmp_path, capsys, monkeypatch):
    checkout = fake_checkout(tmp_path)
    for name, value in fake_idf(tmp_path).items():
        monkeypatch.setenv(name, value)
    assert build_firmware.main(["--board", "esp32c3-p1", "--micropython", str(checkout), "--dry-run"]) == 0
    frozen, *steps = capsys.readouterr().out.splitlines()
    board = ROOT / "boards" / "esp32c3-p1"
    # the app it freezes is the one `make micropython` freezes into the unix builds CI runs
    assert frozen == build_micropython.app_summary()
    assert steps[0] == "(cd %s && make -C mpy-cross)" % checkout
    assert steps[1] == "(cd %s && make BOARD_DIR=%s submodules)" % (checkout / "ports" / "esp32", board)
    assert "USER_C_MODULES=%s" % (ROOT / "firmware" / "cmodules" / "micropython.cmake") in steps[2]
    assert "FROZEN_MANIFEST=%s" % (board / "manifest.py") in steps[2]
    assert (ROOT / "firmware" / "cmodules" / "micropython.cmake").is_file()


# ---- board definitions ----------------------------------------------------------------------

def test_every_board_has_a_micropython_definition():
    assert {b.name for b in BOARDS} >= {"esp32-p1", "esp32-mbus", "esp32c3-p1"}
    for board in BOARDS:
        for name in ("manifest.py", "mpconfigboard.cmake", "mpconfigboard.h", "sdkconfig.board"):
            assert (board / name).is_file(), board / name


def manifest_calls(path):
    source = path.read_text()
    ast.parse(source)
    calls = []
    tools = dict((name, lambda *args, _name=name, **kw: calls.append((_name, args, kw)))
                 for name in ("include", "freeze", "require", "module", "package", "metadata"))
    exec(compile(source, str(path), "exec"), tools)
    return calls


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.name)
def test_manifest_freezes_the_app_on_top_of_the_port_manifest(board):
    calls = manifest_calls(board / "manifest.py")
    assert ("include", ("$(PORT_DIR)/boards/manifest.py",), {}) in calls
    included = [pathlib.Path(args[0].replace("$(BOARD_DIR)", str(board))).resolve()
                for name, args, _ in calls if name == "include" and "$(PORT_DIR)" not in args[0]]
    assert included == [ROOT / "firmware" / "manifest.py"]   # the app list the unix build uses
    assert not [call for call in calls if call[0] != "include"]


def test_the_app_manifest_freezes_all_of_firmware_lib():
    assert manifest_calls(ROOT / "firmware" / "manifest.py") == [("freeze", ("lib",), {})]
    unix = manifest_calls(ROOT / "firmware" / "manifest_unix.py")
    assert unix == [("include", ("$(PORT_DIR)/variants/standard/manifest.py",), {}),
                    ("include", ("manifest.py",), {})]
    modules = build_micropython.app_modules()
    lib = ROOT / "firmware" / "lib"
    assert len(modules) == len(list(lib.rglob("*.py")))
    assert {"dongle.app", "dongle.web", "meterkit", "meterkit.link.p1"} <= set(modules)
    for board in BOARDS:
        assert build_micropython.app_modules(board / "manifest.py", {"BOARD_DIR": board}) == modules


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.name)
def test_board_cmake_matches_board_json(board):
    spec = json.loads((board / "board.json").read_text())
    cmake = (board / "mpconfigboard.cmake").read_text()
    assert re.search(r"set\(IDF_TARGET %s\)" % spec["chip"], cmake)
    assert "${MICROPY_BOARD_DIR}/sdkconfig.board" in cmake
    assert "set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)" in cmake
    modules = re.search(r"set\(USER_C_MODULES (\S+)\)", cmake).group(1)
    assert pathlib.Path(modules.replace("${MICROPY_BOARD_DIR}", str(board))).resolve().is_file()
    if spec["chip"] != "esp32":   # RISC-V chips: the viper loops need the right native arch
        assert "-march=rv32imc" in cmake


@pytest.mark.parametrize("board", BOARDS, ids=lambda b: b.name)
def test_board_header_and_sdkconfig(board):
    spec = json.loads((board / "board.json").read_text())
    header = (board / "mpconfigboard.h").read_text()
    assert '#define MICROPY_HW_BOARD_NAME               "meterkit %s"' % board.name in header
    assert re.search(r"#define MICROPY_PY_BLUETOOTH\s+\(0\)", header)
    for line in (board / "sdkconfig.board").read_text().splitlines():
        assert not line or line.startswith("#") or re.fullmatch(r"CONFIG_[A-Z0-9_]+=\S+", line), line
    assert "CONFIG_MBEDTLS_GCM_C=y" in (board / "sdkconfig.board").read_text()
    # a meter on UART0's pins must not feed the REPL
    if set(UART0_PINS[spec["chip"]]) & {spec["uart"]["rx"], spec["uart"]["tx"]}:
        assert re.search(r"#define MICROPY_HW_ENABLE_UART_REPL\s+\(0\)", header)


# ---- backends() -------------------------------------------------------------------------------

def test_backends_on_cpython_read_each_modules_choice():
    from meterkit import backends, crc
    from meterkit.crypto import gcm
    from meterkit.link import hdlc, p1
    pairs = backends.backends()
    assert pairs == [("gcm", gcm.BACKEND), ("crc", crc.BACKEND), ("p1_scan", p1.BACKEND),
                     ("hdlc", hdlc.BACKEND)]
    assert (p1.BACKEND, hdlc.BACKEND) == ("cpython", "cpython")
    assert backends.summary() == "gcm=%s crc=%s p1_scan=cpython hdlc=cpython" % (gcm.BACKEND, crc.BACKEND)


def test_backends_follow_gcm_use():
    from meterkit import backends
    from meterkit.crypto import gcm
    chosen = gcm.BACKEND
    try:
        gcm.use("python")
        assert backends.backends()[0] == ("gcm", "python")
    finally:
        gcm.use(chosen)


def test_backends_without_loading_on_cpython():
    code = ("from meterkit import backends; print(backends.backends(load=False)); "
            "import meterkit.crc; print(backends.summary(load=False))")
    out = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT / "firmware" / "lib"),
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == str([("gcm", "not loaded"), ("crc", "not loaded"), ("p1_scan", "not loaded"),
                          ("hdlc", "not loaded")])
    assert out[1].startswith("gcm=not loaded crc=") and not out[1].startswith("gcm=not loaded crc=not")


def test_backends_on_micropython():
    out = run_micropython(
        "from meterkit import backends\n"
        "print(backends.backends(False))\n"
        "print(backends.backends())\n"
        "from meterkit.crypto import gcm\n"
        "gcm.use('python')\n"
        "print(backends.summary())\n").splitlines()
    assert out[0] == ("[('gcm', 'not loaded'), ('crc', 'not loaded'), ('p1_scan', 'not loaded'), "
                      "('hdlc', 'not loaded')]")
    assert out[1] == "[('gcm', 'viper'), ('crc', 'viper'), ('p1_scan', 'viper'), ('hdlc', 'viper')]"
    assert out[2] == "gcm=python crc=viper p1_scan=viper hdlc=viper"


def test_backends_on_micropython_pure_python():
    out = run_micropython("import meterkit\nmeterkit.PURE_PYTHON = True\n"
                          "from meterkit import backends\nprint(backends.summary())\n")
    assert out.strip() == "gcm=python crc=python p1_scan=python hdlc=python"


# ---- the size figures' method ---------------------------------------------------------------

def test_never_run_keeps_the_code_but_runs_nothing():
    source = '"""doc"""\nimport no_such_module\nX = 1\ndef f():\n    return X\nraise SystemExit\n'
    transformed = bench_size.never_run(source)
    namespace = {"__name__": "meterkit.something"}
    exec(compile(transformed, "t", "exec"), namespace)
    assert "X" not in namespace and "f" not in namespace and "no_such_module" not in namespace
    assert transformed.splitlines()[1] == "if __name__ == 'never':"
    assert "    def f():" in transformed


def test_code_share_is_part_of_the_heap_after_import(tmp_path):
    bench_size.build_mpy.build("x64", tmp_path / "x64")
    bench_size.build_code_only(tmp_path / "code")
    label, setup = bench_size.SCENARIOS[0]
    held, loaded = bench_size.heap_after(tmp_path / "x64" / "lib", setup)
    assert "meterkit.link.p1" in loaded and "meterkit.dsmr" in loaded and "meterkit.security" not in loaded
    code, again = bench_size.heap_after(tmp_path / "code", "".join("import %s\n" % m for m in loaded))
    assert again == loaded
    assert 0 < code < held


# ---- the profile behind "what is in C" ------------------------------------------------------

def test_profile_times_the_stages_and_counts_calls():
    sys.path.insert(0, str(ROOT / "firmware" / "cmodules"))
    import profile_core
    name, raw, key, ak, pieces = profile_core.workloads()[0]
    stages, cost, rows = profile_core.profile(raw, key, ak, pieces, rounds=1)
    assert [stage for stage, _ in stages] == ["whole_stream", "p1_framer_scan", "crc16_arc",
                                              "p1_text_to_reading"]
    assert all(ns > 0 for _, ns in stages) and cost > 0
    calls = dict((function, n) for function, n, _, _ in rows)
    assert calls["dsmr.decode_telegram"] == 1 and calls["crc.crc16_arc"] == 1   # once per telegram
    assert calls["link.p1.frame_length"] >= 1 and calls["stream.StreamDecoder.feed"] == 1
