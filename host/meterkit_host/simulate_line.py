"""Where the simulated meter's bytes go (stdout, TCP clients, a pseudo-terminal), paced in time,
with optional line noise and corrupted frames so decoders can be tested on a dirty line."""
import os
import random
import socket
import sys
import threading
import time

FRAME_STARTS = (0x2F, 0x7E, 0x68, 0xDB)      # noise never contains these: no false frame starts


def garble(frames, rate, rng):
    """(bytes, corrupted): maybe noise before the push, maybe one byte of its last frame flipped."""
    noise = b""
    if rng.random() < rate:
        noise = bytes(rng.choice([b for b in range(256) if b not in FRAME_STARTS])
                      for _ in range(rng.randrange(1, 17)))
    corrupted = rng.random() < rate
    if corrupted:
        frames = frames[:-1] + [_flip(frames[-1])]
    return noise + b"".join(frames), corrupted


def _flip(frame):
    """P1 text: change one digit (the CRC, where there is one, catches it). HDLC and M-Bus: flip a
    bit of the last data byte before the checksum. 0xDB: flip a ciphertext bit mid-frame (caught
    by the tag, or, when no AK is set, by the P1 CRC in the plaintext: AES-CTR flips that bit)."""
    data = bytearray(frame)
    if data[:1] == b"/":
        digits = [i for i in range(data.find(b"\n"), data.find(b"!")) if 0x30 <= data[i] <= 0x39]
        i = digits[len(digits) // 2]
        data[i] = 0x30 + (data[i] - 0x30 + 1) % 10
    else:
        data[len(data) // 2 if data[0] == 0xDB else len(data) - 4] ^= 0x01
    return bytes(data)


class StdoutSink:
    """Raw bytes on standard output (pipe them into `meterkit decode -`)."""

    def __call__(self, data):
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def close(self):
        pass


class TcpSink:
    """Listen on 127.0.0.1:port; send every push to every connected client."""

    def __init__(self, port, log):
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))
        self.server.listen(8)
        self.port = self.server.getsockname()[1]
        self.clients = []
        self.lock = threading.Lock()
        self.joined = threading.Condition(self.lock)
        log("listening on 127.0.0.1:%d" % self.port)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            client.settimeout(5)
            with self.lock:
                self.clients.append(client)
                self.joined.notify_all()

    def wait(self, count):
        with self.lock:
            while len(self.clients) < count:
                self.joined.wait()

    def __call__(self, data):
        with self.lock:
            for client in list(self.clients):
                try:
                    client.sendall(data)
                except OSError:   # gone or stuck: drop it, keep serving the others
                    self.clients.remove(client)
                    client.close()

    def close(self):
        self.server.close()
        with self.lock:
            for client in self.clients:
                try:
                    client.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                client.close()


class PtySink:
    """A pseudo-terminal pair in raw mode; readers open the slave path like a serial port."""

    def __init__(self, log):
        import tty
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        log(self.path)

    def __call__(self, data):
        try:
            os.write(self.master, data)
        except BlockingIOError:   # nobody reads and the buffer is full: the bytes are lost, as on a wire
            pass

    def close(self):
        os.close(self.master)
        os.close(self.slave)


def stream(meter, sink, count=None, period=None, speed=1, garbage=0, log=None):
    """Send `count` pushes (None: forever) every `period` seconds (default: the meter's interval)."""
    period = (meter.interval if period is None else period) / speed
    rng = random.Random(meter.counter)
    deadline = time.monotonic()
    sent = 0
    while count is None or sent < count:
        frames, expected = meter.next_frames()
        data, corrupted = garble(frames, garbage, rng) if garbage else (b"".join(frames), False)
        sink(data)
        sent += 1
        if log:
            log("frame %d: %d bytes, %s%s" % (sent, len(data), expected.get("timestamp"),
                                              " (corrupted)" if corrupted else ""))
        if count is None or sent < count:
            deadline += period
            time.sleep(max(0, deadline - time.monotonic()))
    return sent


def stderr_line(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
