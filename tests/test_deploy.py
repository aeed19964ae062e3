"""meterkit deploy: the plan (which files, which arch, which order) and a real deploy with mpremote
into the MicroPython unix port's REPL over a pseudo-terminal."""
import hashlib
import json
import os
import select
import subprocess
import sys
import threading
import tty

import pytest

from conftest import ROOT, micropython_binary

sys.path.insert(0, str(ROOT / "host"))
from meterkit_host import cli, deploy  # noqa: E402
from meterkit_host.deploy import DeployError  # noqa: E402

VERSION = deploy.app_version()


class PtyDevice:
    """The unix port's REPL bridged to a pty whose name mpremote opens, like a USB serial port.
    root is the device's filesystem (the process's working directory).

    Like a device plugged in a while ago, it is up before anyone connects: mpremote's handshake
    sent to a REPL still starting was answered out of step, and the deploy waited forever in a
    read without timeout. The REPL talks through pipes, not a terminal: the unix port discards a
    terminal's unread input (tcsetattr TCSAFLUSH) when it switches the terminal's mode, which a
    UART never does. -i keeps the REPL up on a stdin that is no terminal."""

    def __init__(self, root):
        self.root = root
        self.master, port_side = os.openpty()
        tty.setraw(port_side)   # no newline translation: bytes pass as a UART passes them
        self.port = os.ttyname(port_side)
        self.fds = [self.master, port_side]
        self.proc = subprocess.Popen([micropython_binary(), "-i"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=root,
                                     start_new_session=True, bufsize=0)
        self.up = threading.Event()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()
        if not self.up.wait(30):
            self.close()
            raise AssertionError("the unix port's REPL did not start")

    def _pump(self):
        device_out, device_in = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        seen = b""
        while self.proc.poll() is None:
            ready, _, _ = select.select([device_out, self.master], [], [], 0.2)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                    os.write(self.master if fd == device_out else device_in, data)
                except OSError:
                    return
                if fd == device_out and not self.up.is_set():
                    seen += data
                    if b">>> " in seen:   # the first prompt: the REPL is up
                        self.up.set()

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.pump.join()   # ends within one select() timeout; only then close its fds
        self.proc.stdin.close()
        self.proc.stdout.close()
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def device(tmp_path):
    root = tmp_path / "device"
    root.mkdir()
    dev = PtyDevice(root)
    yield dev
    dev.close()


# -- the plan -------------------------------------------------------------------------------------

def test_the_device_tells_its_arch_and_mpy_version():
    assert deploy.parse_probe("esp32 %d\n" % (10 << 10 | 3 << 8 | 6)) == ("esp32", "xtensawin", 6)
    assert deploy.parse_probe("linux %d" % (2 << 10 | 3 << 8 | 6)) == ("linux", "x64", 6)
    assert deploy.parse_probe("esp32 %d" % (11 << 10 | 6))[1] == "rv32imc"
    with pytest.raises(DeployError, match="native"):
        deploy.parse_probe("rp2 6")


@pytest.mark.parametrize("board, arch", [("esp32-p1", "xtensawin"), ("esp32-mbus", "xtensawin"),
                                         ("esp32c3-p1", "rv32imc")])
def test_each_board_needs_the_arch_of_its_chip(board, arch):
    assert deploy.board_arch(ROOT / "boards" / board) == arch


def tree(tmp_path):
    root = tmp_path / "tree"
    for path, text in (("main.py", "loader"), ("lib/dongle/app.mpy", "app"),
                       ("lib/meterkit/stream.mpy", "stream"), ("boot.py", "boot")):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def test_deploy_order_is_lib_first_the_app_then_outside_files_config_state_and_the_loader_last(tmp_path):
    extras = [("config.json", b"{}"), ("keys/ota_public.json", b"{}"), ("boards/b/board.json", b"{}"),
              ("ota/state.json", b"{}")]
    paths = [path for path, _ in deploy.desired_files(tree(tmp_path), "0.4.0", extras)]
    assert paths == ["apps/0.4.0/lib/dongle/app.mpy", "apps/0.4.0/lib/meterkit/stream.mpy",
                     "apps/0.4.0/boot.py", "apps/0.4.0/main.py",
                     "boards/b/board.json", "keys/ota_public.json",
                     "config.json", "ota/state.json", "main.py"]


def test_the_plan_copies_only_what_differs_and_removes_what_the_app_no_longer_has(tmp_path):
    desired = deploy.desired_files(tree(tmp_path), "0.4.0")
    sha = {path: hashlib.sha256(data).hexdigest() for path, data in desired}
    on_device = dict(sha)
    on_device["apps/0.4.0/lib/dongle/app.mpy"] = "0" * 64            # changed
    del on_device["apps/0.4.0/lib/meterkit/stream.mpy"]               # new
    on_device["apps/0.4.0/lib/old.mpy"] = "1" * 64                    # gone from the tree
    on_device["apps/0.3.0/lib/old.mpy"] = "1" * 64                    # another version: kept
    uploads, removals, unchanged = deploy.plan(desired, on_device, "0.4.0")
    assert [(path, reason) for path, _, reason in uploads] == [
        ("apps/0.4.0/lib/dongle/app.mpy", "changed"), ("apps/0.4.0/lib/meterkit/stream.mpy", "new")]
    assert removals == ["apps/0.4.0/lib/old.mpy"] and unchanged == len(desired) - 2


def test_state_switches_to_the_deployed_version_and_keeps_the_previous_one():
    assert deploy.new_state("0.2.0", None)["active"] == "0.2.0"
    assert deploy.new_state("0.2.0", {"active": "0.2.0", "trial": None, "boots": 3}) is None
    state = deploy.new_state("0.2.0", {"active": "0.1.0", "previous": None, "trial": "0.1.5"})
    assert state == {"active": "0.2.0", "previous": "0.1.0", "trial": None, "boots": 0, "last_error": None}


def test_a_config_is_validated_before_anything_is_touched(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"mqtt": {"port": 99999}, "colour": "blue"}))
    with pytest.raises(DeployError) as caught:
        deploy.read_extras(None, bad, None)
    assert "mqtt.port: must be 1..65535" in str(caught.value) and "colour: unknown field" in str(caught.value)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"mqtt": {"host": "broker.lan"}}))
    (path, data), = deploy.read_extras(None, good, None)
    assert path == "config.json" and json.loads(data)["mqtt"]["host"] == "broker.lan"


def test_a_bad_public_key_or_board_is_refused(tmp_path):
    key = tmp_path / "key.json"
    key.write_text('{"n": "zz", "e": 65537}')
    with pytest.raises(DeployError, match="not an OTA public key"):
        deploy.read_extras(None, None, key)
    with pytest.raises(DeployError, match="no board nonesuch"):
        deploy.read_extras("nonesuch", None, None)


# -- a real deploy into the unix port --------------------------------------------------------------

def device_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_real_deploy_copies_the_x64_tree_then_only_what_changed(device, tmp_path, capsys):
    from meterkit_host import release
    release.keygen(tmp_path / "keys")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"mqtt": {"host": "broker.lan"}}))
    assert cli.main(["deploy", "--port", device.port, "--config", str(config),
                     "--public-key", str(tmp_path / "keys" / "ota_public.json")]) == 0
    first = capsys.readouterr().out
    assert "device: linux, .mpy x64 v6; app %s" % VERSION in first
    files = device_files(device.root)
    app = "apps/%s/" % VERSION
    assert files["main.py"] == files[app + "main.py"] == (ROOT / "firmware" / "main.py").read_bytes()
    assert files["keys/ota_public.json"] == (tmp_path / "keys" / "ota_public.json").read_bytes()
    assert json.loads(files["config.json"])["mqtt"]["host"] == "broker.lan"
    assert json.loads(files["ota/state.json"])["active"] == VERSION
    viper = files[app + "lib/meterkit/crc_viper.mpy"]
    assert viper[:2] == b"M\x06" and viper[2] >> 2 == 2            # native code for x64
    assert not [p for p in files if p.endswith(".tmp")]
    assert "%d copied, 0 removed, 0 unchanged" % len(files) in first
    # the deployed tree imports on the unix port
    proc = subprocess.run([micropython_binary(), "-c", "import dongle.app, meterkit.stream; print('ok')"],
                          env=dict(os.environ, MICROPYPATH=str(device.root / app / "lib") + ":.frozen"),
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout == "ok\n", proc.stderr

    # again: nothing to copy; then one changed file and one stray file
    assert cli.main(["deploy", "--port", device.port]) == 0
    unchanged = len(files) - 3   # all but the config, the key (not given now) and the state (current)
    assert "0 copied, 0 removed, %d unchanged" % unchanged in capsys.readouterr().out
    (device.root / app / "lib/meterkit/stream.mpy").write_bytes(b"broken")
    (device.root / app / "lib/stray.mpy").write_bytes(b"old")
    uploads, removals, _ = deploy.deploy(device.port, out=lambda line: None)
    assert [path for path, _, _ in uploads] == [app + "lib/meterkit/stream.mpy"]
    assert removals == [app + "lib/stray.mpy"] and not (device.root / app / "lib/stray.mpy").exists()
    assert (device.root / app / "lib/meterkit/stream.mpy").read_bytes() == files[app + "lib/meterkit/stream.mpy"]


def test_deploy_refuses_a_board_for_another_chip(device, capsys):
    assert cli.main(["deploy", "--port", device.port, "--board", "esp32c3-p1"]) == 2
    assert "needs rv32imc code, but the device runs x64" in capsys.readouterr().err
    assert device_files(device.root) == {}
