"""Run the real firmware (firmware/main.py on the MicroPython unix port) against a simulated meter
and a real mosquitto, and watch what arrives.

    line = MeterLine(Meter("dsmr5", seed=1), count=20, interval=0.05)   # TCP, like the UART
    with Broker(tmp_path) as broker, Subscriber(broker.port) as sub:
        fw = Firmware(tmp_path, {"meter": {...}}, broker.port, line.port).start()
        fw.wait()
        sub.messages  ->  [(topic, payload bytes, retained)]
"""
import json
import os
import pathlib
import queue
import random
import socket
import subprocess
import sys
import threading
import time

from broker import free_port
from conftest import CORE, ROOT, micropython_binary

sys.path.insert(0, str(CORE))
sys.path.insert(0, str(ROOT / "host"))
from meterkit_host.simulate import Meter  # noqa: E402,F401
from meterkit_host.simulate_line import garble  # noqa: E402  (the simulator's own dirty line)

FIRMWARE_PROFILE = {"dsmr5": "dsmr5", "dsmr22": "dsmr22", "smarty": "smarty",
                    "e450": "hdlc_dlms", "evn": "mbus_dlms"}


class MeterLine:
    """A TCP server that plays a simulated meter to the first client, then hangs up."""

    def __init__(self, meter, count, interval=0.05, garbage=0.0, seed=7):
        self.meter, self.count, self.interval, self.garbage = meter, count, interval, garbage
        self.rng = random.Random(seed)
        self.expected = []        # what each push states, in order
        self.corrupted = 0
        self.sent = threading.Event()
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._play, daemon=True).start()

    def _play(self):
        client, _ = self.server.accept()
        with client:
            for _ in range(self.count):
                frames, expected = self.meter.next_frames()
                data, corrupted = garble(frames, self.garbage, self.rng)
                if corrupted:
                    self.corrupted += 1
                else:
                    self.expected.append(expected)
                try:
                    client.sendall(data)
                except OSError:   # the firmware went away (a test that stops it, or a crash)
                    break
                time.sleep(self.interval)
            self.sent.set()
        self.server.close()


_COMPILED = []


def compiled_firmware():
    """The firmware as the device gets it (tools/build_mpy.py, .mpy for the unix port's x64),
    built once per test run: compiling .py on the device would cost the heap we measure."""
    if not _COMPILED:
        import tempfile
        sys.path.insert(0, str(ROOT / "tools"))
        import build_mpy
        out = pathlib.Path(tempfile.mkdtemp(prefix="meterkit-x64-"))
        build_mpy.build("x64", out)
        _COMPILED.append(out)
    return _COMPILED[0]


class FirmwareProcess:
    """A firmware process on the unix port; tests wait for lines of its output.

    Subclasses set self.lines = [] and self.proc = None, and call launch(argv, env)."""

    def launch(self, argv, env, cwd=None):
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=cwd)
        self.queue = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc, self.queue), daemon=True).start()
        return self

    @staticmethod
    def _pump(proc, lines):
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def wait_for(self, prefix, timeout=60):
        """The first new output line starting with prefix."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError("firmware ended:\n" + "\n".join(self.lines[-30:]))
            self.lines.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError("no %r line within %d s:\n%s" % (prefix, timeout,
                                                              "\n".join(self.lines[-30:])))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Firmware(FirmwareProcess):
    def __init__(self, directory, config, broker_port=None, meter_port=None, heapsize="1m",
                 verbose=False, compiled=False):
        self.directory = pathlib.Path(directory) / "dongle"
        self.directory.mkdir(exist_ok=True)
        config = json.loads(json.dumps(config))
        config.setdefault("meter", {})
        if meter_port:
            config["meter"]["source"] = "tcp:127.0.0.1:%d" % meter_port
        if broker_port:
            config.setdefault("mqtt", {}).update(host="127.0.0.1", port=broker_port)
        config.setdefault("http", {}).setdefault("port", free_port())
        self.http_port = config["http"]["port"]
        (self.directory / "config.json").write_text(json.dumps(config))
        tree = compiled_firmware() if compiled else ROOT / "firmware"
        # run from the tree, as the device runs from /: every module's __file__ is a qstr in the
        # heap, and "./lib/dongle/app.mpy" costs what "/lib/dongle/app.mpy" does on the device
        self.cwd = str(tree)
        self.argv = [micropython_binary(), "-X", "heapsize=" + heapsize,
                     "main.py", str(self.directory.resolve()), "--exit-at-end"]
        if verbose:
            self.argv.append("--verbose")
        self.lines = []
        self.proc = None

    def start(self):
        env = dict(os.environ)
        env.pop("MICROPYPATH", None)   # main.py finds its own lib folder
        return self.launch(self.argv, env, self.cwd)

    def wait(self, timeout=120):
        """Run to the end (--exit-at-end); returns the final stats."""
        done = self.wait_for("done ", timeout)
        self.proc.wait(timeout=10)
        assert self.proc.returncode == 0, "\n".join(self.lines[-30:])
        return json.loads(done[5:])

    def diagnostics(self):
        return [json.loads(line[5:]) for line in self.lines if line.startswith("diag ")]


class Subscriber:
    """mosquitto_sub on '#': an independent client that records everything, in order.

    persistent=True keeps a QoS 1 session on the broker, so it misses nothing across a broker
    restart (with Broker(..., extra_conf=PERSISTENT))."""

    def __init__(self, port, persistent=False, topic="#"):
        self.port, self.persistent, self.topic = port, persistent, topic
        self.messages = []
        self.lock = threading.Lock()

    def __enter__(self):
        argv = ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(self.port), "-t", self.topic,
                "-q", "1", "-F", "%r %t %x"]   # retained flag, topic, payload in hex
        if self.persistent:
            argv += ["-c", "-i", "meterkit-test-%d" % os.getpid()]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        time.sleep(0.3)   # subscribed before anything is published
        return self

    def _pump(self):
        for line in self.proc.stdout:
            retained, topic, payload = (line.rstrip("\n").split(" ", 2) + [""])[:3]
            with self.lock:
                self.messages.append((topic, bytes.fromhex(payload), retained == "1"))

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait()

    def on(self, topic):
        with self.lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def topics(self):
        with self.lock:
            return [t for t, _, _ in self.messages]

    def wait_until(self, condition, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.05)
        return False


PERSISTENT = "persistence true\npersistence_location %s/\nautosave_interval 1\n"
