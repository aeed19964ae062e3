"""What keeps a gateway's HAN login safe from us: one session at a time, a login budget per hour,
and the pinned certificate, all kept on disk per gateway address.

    with HostLock(directory, "192.168.1.200:443", wait_s) as state:   # GatewayError("busy") if held
        state.pin() / state.set_pin(fp)
        state.logins_allowed(per_hour) -> (ok, next_allowed_epoch)
        state.record_login()

The lock is an flock on a file beside the state: it serializes the sessions of every meterkit
thread and process that talks to that address (two logins of one gateway, say import and feed-in,
never overlap). The login times are written before the login is tried, so whatever fails — a
wrong password, a hang, a crash and a restart by systemd — counts against the budget.
"""
import fcntl
import json
import os
import time

from meterkit.smgw import GatewayError

WINDOW_S = 3600


def _stem(directory, where):
    safe = "".join(ch if ch.isalnum() or ch in ".-" else "_" for ch in where)
    return os.path.join(directory, safe)


def state_path(directory, where):
    """The state file of a gateway address ('192.168.1.200:443')."""
    return _stem(directory, where) + ".json"


class State:
    """The JSON document of one gateway address: {"sha256": pin, "logins": [epoch, ...]}."""

    def __init__(self, path):
        self.path = path
        try:
            with open(path) as f:
                doc = json.load(f)
        except FileNotFoundError:
            doc = {}
        except (OSError, ValueError) as e:
            raise GatewayError("busy", "cannot read %s (%s): fix or delete it" % (path, e))
        self.doc = doc if isinstance(doc, dict) else {}

    def pin(self):
        pin = self.doc.get("sha256")
        return pin if isinstance(pin, str) and pin else None

    def set_pin(self, fingerprint):
        self.doc["sha256"] = fingerprint
        self._save()

    def forget_pin(self):
        old = self.doc.pop("sha256", None)
        self._save()
        return old

    def _logins(self, now):
        logins = [t for t in self.doc.get("logins", ()) if isinstance(t, (int, float))]
        return [t for t in logins if now - WINDOW_S < t <= now + 60]   # (+60: a clock set back)

    def logins_allowed(self, per_hour, now=None):
        """(True, None) or (False, epoch when the next login is allowed)."""
        now = time.time() if now is None else now
        logins = sorted(self._logins(now))
        if len(logins) < per_hour:
            return True, None
        return False, logins[len(logins) - per_hour] + WINDOW_S

    def logins_last_hour(self, now=None):
        return len(self._logins(time.time() if now is None else now))

    def record_login(self, now=None):
        now = time.time() if now is None else now
        self.doc["logins"] = self._logins(now) + [round(now, 3)]
        self._save()

    def _save(self):
        temp = self.path + ".tmp"
        with open(temp, "w") as f:
            json.dump(self.doc, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, self.path)


class HostLock:
    """Exclusive use of one gateway address, across threads and processes."""

    def __init__(self, directory, where, wait_s):
        os.makedirs(directory, exist_ok=True)
        self.lock_path = _stem(directory, where) + ".lock"
        self.state_path = state_path(directory, where)
        self.where, self.wait_s = where, wait_s
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(self.fd)
                    self.fd = None
                    raise GatewayError("busy", "another meterkit reader still has a session with "
                                       "%s after %d s; skipping this cycle (one session at a time)"
                                       % (self.where, self.wait_s))
                time.sleep(0.1)
        try:
            return State(self.state_path)
        except GatewayError:
            self.__exit__()
            raise

    def __exit__(self, *exc):
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
