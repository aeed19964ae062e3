"""Theben CONEXA gateways: JSON requests to POST /smgw/m2m/<gateway id>.sm/json.

    {"method": "smgw-info"}   -> {"smgw-info": {"firmware-info": {"version", "hash"}, …}}
    {"method": "user-info"}   -> {"user-info": {"usage-points": [{"usage-point-id", "taf-state",
                                 "taf-number", …}]}}
    {"method": "readings", "database": "origin", "usage-point-id": …, "last-reading": "true"}
                              -> {"readings": {"channels": [{"obis": "0100010800ff",
                                 "readings": [{"value": "12345678", "capture-time": "…Z"}]}]}}

Digest auth is answered with MD5 whatever the challenge offers: the firmware names SHA-256 but
checks MD5. The usage points read are the running TAF-7 ones, else every running one, as the
open clients choose. A channel's value is an integer in tenths of the OBIS code's unit (Wh for
energy) unless the channel states its own `scaler` and `unit`. Every request carries
X-Content-Length (the body's length), which the firmware expects beside Content-Length.
Wrong credentials get no answer at all (the timeout message says so).
"""
import json

from .values import GatewayError, Snapshot, hex_obis, obis_unit, readings_by_time, scaled, utc_iso

DEFAULT_SCALER = -1


class Theben:
    name = "theben"
    manufacturer = "Theben Smart Energy"
    model = "CONEXA 3.0"
    force_md5 = True

    def __init__(self, http, spec, zone):
        self.http, self.spec = http, spec
        self.path = self.json_path(http, spec)
        http.silent_on_bad_login = True

    @staticmethod
    def json_path(http, spec):
        return http.path or "/smgw/m2m/%s.sm/json" % (spec["gateway_id"] or spec["user"])

    @classmethod
    def probe_request(cls, http, spec):
        body = b'{"method": "smgw-info"}'
        return "POST", cls.json_path(http, spec), {"data": body, "headers": _headers(body)}

    def read(self, mode, since):
        try:
            firmware = self._firmware(self._call({"method": "smgw-info"}, "smgw-info"))
            points = self._usage_points(self._call({"method": "user-info"}, "user-info"))
            readings = []
            for point in points:
                answer = self._call({"method": "readings", "database": "origin",
                                     "usage-point-id": point, "last-reading": "true"}, "readings")
                readings += self._readings(point, answer, mode, since.get(point))
            return Snapshot(firmware, None, readings)
        finally:
            self.http.close()   # no logout request in this API: closing ends the connection

    def _call(self, request, method):
        body = json.dumps(request).encode()
        page = self.http.request("POST", self.path, "the %s request" % method, data=body,
                                 headers=_headers(body))
        try:
            answer = json.loads(page.body.decode("utf-8"))
        except ValueError as e:
            raise GatewayError("format", "the %s answer of %s is not JSON (%s; %d bytes)" % (
                method, self.http.where, e, len(page.body)))
        if not isinstance(answer, dict) or not isinstance(answer.get(method), dict):
            raise GatewayError("format", "the %s answer of %s has no %r object" % (
                method, self.http.where, method))
        return answer[method]

    @staticmethod
    def _firmware(info):
        firmware = info.get("firmware-info")
        if isinstance(firmware, dict) and isinstance(firmware.get("version"), str):
            digest = firmware.get("hash")
            short = "-" + digest[:8] if isinstance(digest, str) and digest else ""
            return firmware["version"] + short
        version = info.get("firmware-version")
        return version if isinstance(version, str) and version else None

    def _usage_points(self, info):
        points = info.get("usage-points")
        if not isinstance(points, list):
            raise GatewayError("format", "user-info of %s lists no usage-points" % self.http.where)
        running = [p for p in points if isinstance(p, dict) and p.get("taf-state") == "running"
                   and isinstance(p.get("usage-point-id"), str)]
        taf7 = [p for p in running if str(p.get("taf-number")) == "7"]
        chosen = [p["usage-point-id"] for p in (taf7 or running)]
        if not chosen:
            raise GatewayError("format", "no running usage point (TAF) for user %r on %s" % (
                self.spec["user"], self.http.where))
        return chosen

    def _readings(self, point, answer, mode, last):
        channels = answer.get("channels")
        if not isinstance(channels, list):
            raise GatewayError("format", "the readings of %s have no channels list" % point)
        by_time = {}
        for channel in channels:
            try:
                obis = hex_obis(channel["obis"])
                scaler = channel.get("scaler", DEFAULT_SCALER)
                unit = channel.get("unit")
                unit = unit if isinstance(unit, str) else obis_unit(obis)
                for entry in channel["readings"]:
                    stamp = utc_iso(entry["capture-time"])
                    value = scaled(entry["value"], scaler)
                    by_time.setdefault(stamp, []).append((obis, value, unit))
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise GatewayError("format", "usage point %s: a channel the reader does not "
                                   "understand (%s: %s)" % (point, type(e).__name__, e))
        return readings_by_time(point, by_time, mode, last)


def _headers(body):
    return {"Content-Type": "application/json", "X-Content-Length": str(len(body))}
