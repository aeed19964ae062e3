"""A real Home Assistant for the tests: installed in a venv of its own (Python 3.13, the version
pinned in tests/ha-requirements.txt), started on a throwaway config folder, onboarded and given
the MQTT integration through its own APIs, and spoken to over REST and the websocket API.

    venv = ha_venv()                                # installed once, then cached
    with HomeAssistant(venv, tmp_path) as ha:       # started and onboarded
        ha.add_mqtt(broker.port)                    # the config flow, as the UI runs it
        ha.state("sensor.x"), ha.ws("energy/validate"), ha.log_records()

The venv lives in $METERKIT_HA_VENV, else ~/.cache/meterkit/ha-<version>-<hash of the pins>: a
CI run starts in a fresh clone, so build/ would not keep it between runs. Installing takes a few
minutes (HA pulls ~150 packages); a failure fails the test with pip's output, it never skips.
"""
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from broker import free_port

HERE = pathlib.Path(__file__).resolve().parent
REQUIREMENTS = HERE / "ha-requirements.txt"
PROBE = HERE / "ha_probe"   # the test-only integration that compiles statistics on demand
USER, PASSWORD = "meterkit", "meterkit-test-password"


def pinned_version():
    return re.search(r"^homeassistant==(\S+)", REQUIREMENTS.read_text(), re.M).group(1)


def python313():
    """Home Assistant 2025.x needs Python 3.13: $METERKIT_PYTHON313, python3.13 on PATH, or a
    pyenv build (what this project's machines have)."""
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = [os.environ.get("METERKIT_PYTHON313")]
    candidates += sorted(glob.glob(pyenv + "/versions/3.13*/bin/python3.13"), reverse=True)
    candidates += [shutil.which("python3.13")]   # last: a pyenv shim may answer and then fail
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and subprocess.run(
                [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 13)"],
                capture_output=True).returncode == 0:
            return candidate
    raise AssertionError("the Home Assistant test needs Python 3.13 (Home Assistant %s does not "
                         "run on older ones): install it (e.g. pyenv install 3.13) or set "
                         "METERKIT_PYTHON313" % pinned_version())


def venv_dir():
    if os.environ.get("METERKIT_HA_VENV"):
        return pathlib.Path(os.environ["METERKIT_HA_VENV"])
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:10]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return pathlib.Path(cache) / "meterkit" / ("ha-%s-%s" % (pinned_version(), digest))


def ha_venv():
    """The venv with the pinned Home Assistant, made if missing (one maker at a time: a lock
    file; a venv without its stamp is a half-made one and is made again)."""
    venv = venv_dir()
    stamp = venv / ".meterkit-installed"
    if stamp.exists():
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(str(venv) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        python = python313()
        log = []
        for argv in ([python, "-m", "venv", str(venv)],
                     [str(venv / "bin/python"), "-m", "pip", "install", "--quiet",
                      "--disable-pip-version-check", "-r", str(REQUIREMENTS)]):
            started = time.monotonic()
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=1500)
            log.append("$ %s  (%.0f s)\n%s%s" % (" ".join(argv), time.monotonic() - started,
                                                 proc.stdout[-3000:], proc.stderr[-6000:]))
            if proc.returncode != 0:
                raise AssertionError("installing Home Assistant %s failed:\n%s"
                                     % (pinned_version(), "\n".join(log)))
        stamp.write_text(REQUIREMENTS.read_text())
    return venv


CONFIGURATION = """\
# Core settings and the integrations the test talks to; MQTT itself is added through the UI's
# config flow API, as a user adds it.
homeassistant:
  name: meterkit test
  latitude: 52.37
  longitude: 4.89
  elevation: 0
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: NL
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
websocket_api:
onboarding:
config:
energy:
history:
recorder:
  commit_interval: 0
meterkit_probe:
logger:
  default: warning
"""


class HomeAssistant:
    def __init__(self, venv, directory):
        self.venv = pathlib.Path(venv)
        self.config = pathlib.Path(directory) / "ha-config"
        self.config.mkdir(parents=True)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.client_id = self.url + "/"
        (self.config / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        shutil.copytree(PROBE, self.config / "custom_components" / "meterkit_probe")
        self.token = None
        self.proc = None
        self._ws = None
        self._ws_id = 0

    # -- the process -------------------------------------------------------------------------------

    def start(self, timeout=180):
        """hass on the config folder; --skip-pip: nothing is installed while it runs, the venv
        has every requirement of what the test sets up."""
        self.output = open(self.config / "hass-output.txt", "w")
        self.proc = subprocess.Popen([str(self.venv / "bin/hass"), "-c", str(self.config),
                                      "--skip-pip"], stdout=self.output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("Home Assistant ended (%s):\n%s" % (self.proc.returncode,
                                                                         self.tail()))
            try:
                status, _ = self.rest("GET", "/api/onboarding", auth=False, timeout=5)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError("Home Assistant did not answer within %d s:\n%s" % (timeout,
                                                                               self.tail()))

    def stop(self):
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self.output.close()

    def __enter__(self):
        return self.start().onboard()

    def __exit__(self, *exc):
        self.stop()

    def tail(self, lines=60):
        path = self.config / "home-assistant.log"
        if not path.exists():
            path = self.config / "hass-output.txt"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- onboarding and the MQTT integration, as the frontend does them ----------------------------

    def onboard(self):
        """The four onboarding steps: the owner account (its auth code is traded for a token),
        the core config, analytics, the integration step."""
        status, answer = self.rest("POST", "/api/onboarding/users", {
            "client_id": self.client_id, "name": "Meterkit", "username": USER,
            "password": PASSWORD, "language": "en"}, auth=False)
        assert status == 200, (status, answer)
        self.token = self._token(answer["auth_code"])
        for step, doc in (("core_config", {}), ("analytics", {}),
                          ("integration", {"client_id": self.client_id,
                                           "redirect_uri": self.client_id + "?auth_callback=1"})):
            status, answer = self.rest("POST", "/api/onboarding/" + step, doc)
            assert status == 200, (step, status, answer)
        status, steps = self.rest("GET", "/api/onboarding", auth=False)
        assert all(step["done"] for step in steps), steps
        return self

    def _token(self, code):
        form = urllib.parse.urlencode({"grant_type": "authorization_code", "code": code,
                                       "client_id": self.client_id}).encode()
        request = urllib.request.Request(self.url + "/auth/token", data=form, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def add_mqtt(self, broker_port):
        """Settings > Devices & services > Add integration > MQTT: broker and port."""
        status, flow = self.rest("POST", "/api/config/config_entries/flow",
                                 {"handler": "mqtt", "show_advanced_options": False})
        assert status == 200 and flow.get("step_id") == "broker", (status, flow)
        status, done = self.rest("POST", "/api/config/config_entries/flow/" + flow["flow_id"],
                                 {"broker": "127.0.0.1", "port": broker_port})
        assert status == 200 and done.get("type") == "create_entry", (status, done)
        assert done["result"]["state"] == "loaded", done
        return done["result"]["entry_id"]

    # -- REST and websocket ------------------------------------------------------------------------

    def rest(self, method, path, doc=None, auth=True, timeout=60):
        """(status, JSON answer or text)."""
        data = json.dumps(doc).encode() if doc is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if doc is not None:
            request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", "Bearer " + self.token)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        try:
            return status, json.loads(body or b"null")
        except ValueError:
            return status, body.decode(errors="replace")

    def states(self):
        status, states = self.rest("GET", "/api/states")
        assert status == 200, states
        return dict((s["entity_id"], s) for s in states)

    def call_service(self, domain, service, data):
        status, answer = self.rest("POST", "/api/services/%s/%s" % (domain, service), data)
        assert status == 200, (domain, service, status, answer)
        return answer

    def ws(self, kind, **fields):
        """One websocket command's result; an error answer raises."""
        import websocket   # websocket-client
        if self._ws is None:
            self._ws = websocket.create_connection(self.url.replace("http", "ws", 1) +
                                                   "/api/websocket", timeout=120)
            assert json.loads(self._ws.recv())["type"] == "auth_required"
            self._ws.send(json.dumps({"type": "auth", "access_token": self.token}))
            answer = json.loads(self._ws.recv())
            assert answer["type"] == "auth_ok", answer
        self._ws_id += 1
        self._ws.send(json.dumps(dict(fields, id=self._ws_id, type=kind)))
        while True:
            message = json.loads(self._ws.recv())
            if message.get("id") == self._ws_id and message["type"] == "result":
                assert message["success"], (kind, message)
                return message["result"]

    # -- the log -----------------------------------------------------------------------------------

    def log_records(self, levels=("WARNING", "ERROR", "CRITICAL")):
        """[(level, logger, text with its traceback)] from home-assistant.log."""
        head = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ (\w+) \(([^)]*)\) \[([^\]]+)\] ")
        records = []
        path = self.config / "home-assistant.log"
        for line in path.read_text(errors="replace").splitlines():
            match = head.match(line)
            if match:
                records.append([match.group(1), match.group(3), line[match.end():]])
            elif records:
                records[-1][2] += "\n" + line
        return [tuple(r) for r in records if r[0] in levels]


def wait_until(condition, timeout=60, interval=0.25, what="condition"):
    """condition()'s first true value; after timeout an AssertionError with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("%s not met within %d s (last: %r)" % (what, timeout, last))


if __name__ == "__main__":   # python tests/ha_harness.py: make the venv now, print where it is
    print(ha_venv())
    sys.exit(0)
