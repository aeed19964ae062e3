"""A real mosquitto broker on a free loopback port, and the helpers around it, for the MQTT tests:
a mosquitto_sub subscriber, a fake broker that misbehaves, TLS certificates.

    with Broker(tmp_path) as broker:          # or the `broker` fixture in test_mqtt.py
        broker.port, broker.stop(), broker.start()
"""
import getpass
import queue
import shutil
import socket
import subprocess
import threading
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


def pump(stream, lines):
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def expect(proc, prefix, timeout=20):
    """The next stdout line starting with prefix (the others are skipped)."""
    while True:
        line = proc.lines.get(timeout=timeout)
        assert line is not None, "process ended before printing %r" % prefix
        if line.startswith(prefix):
            return line


class Subscriber:
    """mosquitto_sub, ready once its SUBACK arrived; messages as 'topic retain qos payload'."""

    def __init__(self, port, topic):
        argv = ["stdbuf", "-oL", "mosquitto_sub", "-d", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
                "-t", topic, "-F", "MSG %t %r %q %p"]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.proc.lines = queue.Queue()
        threading.Thread(target=pump, args=(self.proc.stdout, self.proc.lines),
                         daemon=True).start()
        try:
            expect(self.proc, "Subscribed")
        except BaseException:
            self.close()
            raise

    def next_message(self):
        return expect(self.proc, "MSG ")[4:]

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class FakeBroker:
    """Accepts one client, answers CONNACK, then sends `then` and its FIN (or stays silent)."""

    def __init__(self, then):
        self.then = then
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.server.accept()
        with conn:
            conn.recv(1024)                 # CONNECT
            conn.sendall(b"\x20\x02\x00\x00")
            conn.recv(1024)                 # whatever the client does next
            if self.then:
                conn.sendall(self.then)
                conn.shutdown(socket.SHUT_WR)
            conn.settimeout(30)
            try:
                while conn.recv(1024):
                    pass
            except OSError:
                pass

    def close(self):
        self.server.close()


def make_ca(directory, stem):
    """A CA and a server certificate for 127.0.0.1 signed by it, as PEM files."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def certificate(subject, key, issuer, issuer_key, serial, extension, critical):
        start = datetime.datetime(2024, 1, 1)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                .public_key(key.public_key()).serial_number(serial).not_valid_before(start)
                .not_valid_after(start + datetime.timedelta(days=36500))
                .add_extension(extension, critical=critical).sign(issuer_key, hashes.SHA256()))

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate(name(stem), ca_key, name(stem), ca_key, 1,
                     x509.BasicConstraints(ca=True, path_length=None), True)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    server = certificate(name("127.0.0.1"), key, ca.subject, ca_key, 2, san, False)
    pem = serialization.Encoding.PEM
    paths = dict((part, directory / ("%s-%s.pem" % (stem, part))) for part in ("ca", "cert", "key"))
    paths["ca"].write_bytes(ca.public_bytes(pem))
    paths["cert"].write_bytes(server.public_bytes(pem))
    paths["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths
