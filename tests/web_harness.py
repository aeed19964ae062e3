"""The firmware running as a web server (no --exit-at-end), and small raw HTTP helpers."""
import contextlib
import http.client
import json
import os
import socket

from broker import free_port, wait_for_port
from firmware_harness import Firmware, Meter, MeterLine  # noqa: F401

SMARTY_KEY = "5AD84121D9D20B364B7A11F3C1B5827F"
ADMIN = "correct horse battery"


class Line(MeterLine):
    def _play(self):
        try:
            super()._play()
        except OSError:
            pass   # the test stopped the firmware mid-push


class WebFirmware(Firmware):
    """Firmware that keeps serving after the meter ends; its captive DNS on a loopback port."""

    def __init__(self, directory, config, meter_port=None, **kw):
        super().__init__(directory, config, None, meter_port, **kw)
        self.argv.remove("--exit-at-end")
        self.dns_port = free_port()

    def start(self):
        env = dict(os.environ, METERKIT_DNS_PORT=str(self.dns_port))
        env.pop("MICROPYTHONPATH", None)
        env.pop("MICROPYPATH", None)
        self.launch(self.argv, env, self.cwd)
        wait_for_port(self.http_port, timeout=30)
        return self


@contextlib.contextmanager
def running(tmp_path, config, meter=None, interval=0.2, count=3000, **options):
    """options: Firmware's (the binary, frozen, compiled)."""
    line = Line(meter or Meter("dsmr5", seed=3), count=count, interval=interval)
    fw = WebFirmware(tmp_path, config, line.port, **options).start()
    try:
        yield fw
    finally:
        fw.stop()


def call(port, method, path, body=None, headers=None, timeout=15):
    """(status, headers {lowercase: value}, body bytes) of one request."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        headers = dict(headers or {}, **{"Content-Type": "application/json"})
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, dict((k.lower(), v) for k, v in response.getheaders()), data


def call_json(port, method, path, body=None, headers=None):
    status, _, data = call(port, method, path, body, headers)
    return status, json.loads(data) if data else None


def raw(port, data, timeout=15, half_close=False):
    """Send bytes as they are; everything the server answers before it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass   # the server may close before it has read everything
        return receive_all(s)


def receive_all(s):
    chunks = []
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
    except (ConnectionResetError, socket.timeout):
        pass
    return b"".join(chunks)


def status_of(response):
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.") else None


def login(port, password=ADMIN):
    status, headers, _ = call(port, "POST", "/api/login", {"password": password})
    assert status == 200, status
    return {"Cookie": headers["set-cookie"].split(";")[0]}
