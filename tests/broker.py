"""A real mosquitto broker on a free loopback port, for the MQTT tests.

    with Broker(tmp_path) as broker:          # or the `broker` fixture in test_mqtt.py
        broker.port, broker.stop(), broker.start()
"""
import getpass
import shutil
import socket
import subprocess
import time

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, up=True, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            if up:
                return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise RuntimeError("port %d did not come %s" % (port, "up" if up else "down"))


class Broker:
    def __init__(self, directory, users=None, extra_conf=""):
        """users: {name: password} turns anonymous access off."""
        self.directory = directory
        self.port = free_port()
        self.users = users
        self.extra_conf = extra_conf
        self.process = None

    def _write_config(self):
        lines = ["listener %d 127.0.0.1" % self.port, "persistence false",
                 "user %s" % getpass.getuser(),   # as root, don't drop to a user who can't read tmp
                 "log_dest file %s" % (self.directory / "mosquitto.log")]
        if self.users:
            password_file = self.directory / "passwords"
            password_file.write_text("")
            for name, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(password_file), name, password],
                               check=True, capture_output=True)
            lines += ["allow_anonymous false", "password_file %s" % password_file]
        else:
            lines.append("allow_anonymous true")
        config = self.directory / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n" + self.extra_conf)
        return config

    def start(self):
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self._write_config())],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_for_port(self.port)
        except RuntimeError:
            self.stop()
            raise RuntimeError("mosquitto did not start: " + self.log())
        return self

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def log(self):
        path = self.directory / "mosquitto.log"
        return path.read_text() if path.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
