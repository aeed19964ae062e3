"""`make demo`: the dongle firmware on the MicroPython unix port, fed by a simulated DSMR5 meter
over TCP, publishing to a real mosquitto; prints live readings and where the web page is.
Stops by itself after ~20 s (or on Ctrl-C). Run a subscriber alongside to watch MQTT:
    mosquitto_sub -p PORT -t 'smartmeter/#' -v
"""
import json
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "firmware" / "lib"), str(ROOT / "host"), str(ROOT / "tests")]

from meterkit_host.simulate import Meter  # noqa: E402

SECONDS = 20
SHOWN = ("power_in", "power_out", "energy_in_t1", "energy_in_t2", "voltage_l1", "gas")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def play_meter(server, interval=1.0):
    """Accept the firmware and send it one DSMR5 telegram per interval (as a meter does)."""
    meter = Meter("dsmr5", seed=int(time.time()), start=int(time.time()))   # the meter clock: now
    client, _ = server.accept()
    with client:
        while True:
            client.sendall(meter.next()[0])
            time.sleep(interval)


def main():
    mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if pathlib.Path(
        "/usr/sbin/mosquitto").exists() else None)
    micropython = pathlib.Path(sys.executable).parent / "micropython"
    if not mosquitto:
        sys.exit("The demo publishes to a real MQTT broker: install mosquitto first\n"
                 "  sudo apt-get install mosquitto mosquitto-clients   (Debian/Ubuntu)\n"
                 "  brew install mosquitto                             (macOS)")
    work = pathlib.Path(tempfile.mkdtemp(prefix="meterkit-demo-"))
    from broker import Broker
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    threading.Thread(target=play_meter, args=(server,), daemon=True).start()
    with Broker(work) as broker:
        dongle = work / "dongle"
        dongle.mkdir()
        web = free_port()
        (dongle / "config.json").write_text(json.dumps({
            "meter": {"profile": "dsmr5", "source": "tcp:127.0.0.1:%d" % server.getsockname()[1]},
            "mqtt": {"host": "127.0.0.1", "port": broker.port}, "http": {"port": web},
            "admin": {"password": "demo-password"},
            "publish": {"diagnostics_interval": 10}}))
        print("mosquitto on 127.0.0.1:%d   (watch: mosquitto_sub -p %d -t 'smartmeter/#' -v)"
              % (broker.port, broker.port))
        print("firmware data folder: %s" % dongle)
        print("web page admin password: demo-password   (the page's address follows)")
        proc = subprocess.Popen([str(micropython), str(ROOT / "firmware" / "main.py"), str(dongle),
                                 "--verbose"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        threading.Thread(target=show, args=(proc,), daemon=True).start()
        try:
            proc.wait(timeout=SECONDS)
        except subprocess.TimeoutExpired:
            print("(demo over after %d s)" % SECONDS)
        except KeyboardInterrupt:
            print("(stopped)")
        finally:
            proc.terminate()
            proc.wait()
    print("Run it yourself: micropython firmware/main.py DATA_DIR  (DATA_DIR/config.json: see %s)"
          % (dongle / "config.json"))


def show(proc):
    for line in proc.stdout:
        line = line.rstrip("\n")
        if line.startswith("reading "):
            _, meter, stamp, *values = line.split(" ")
            shown = [v for v in values if v.split("=")[0] in SHOWN]
            print("%s  meter …%s  %s" % (stamp, meter[-6:], "  ".join(shown)))
        elif not line.startswith("diag "):
            print(line)


if __name__ == "__main__":
    main()
