"""Every firmware-side module compiles for the ESP32 (xtensawin, viper code included) and runs
from .mpy on the unix port."""
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import build_mpy  # noqa: E402

SOURCES = build_mpy.sources()


@pytest.mark.parametrize("src", SOURCES, ids=[str(p.relative_to(ROOT)) for p in SOURCES])
def test_compiles_for_esp32(src, tmp_path):
    proc = subprocess.run([build_mpy.mpy_cross(), "-march=xtensawin", "-o", str(tmp_path / "x.mpy"), str(src)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "x.mpy").stat().st_size > 0


def test_mpy_tree_runs_on_unix_port(tmp_path):
    """The same tree built for x64 imports and decodes on the unix port: .mpy, not source."""
    build_mpy.build("x64", tmp_path)
    from conftest import micropython_binary
    code = ("import meterkit.stream, meterkit.reading; "
            "print(meterkit.stream.__file__ if hasattr(meterkit.stream, '__file__') else 'frozen')")
    proc = subprocess.run([micropython_binary(), "-c", code], capture_output=True, text=True,
                          env={"MICROPYPATH": str(tmp_path / "lib")})
    assert proc.returncode == 0, proc.stderr
    assert ".mpy" in proc.stdout or "frozen" in proc.stdout
