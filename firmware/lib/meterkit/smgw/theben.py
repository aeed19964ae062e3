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
Wrong credentials get no answer at all (the transport's timeout message says so). There is no
logout: closing the connection ends the cycle.
"""
from . import GatewayError
from .exchange import JsonAnswer, Request, json_body
from .values import Batch, format_error, hex_obis, obis_unit, scaled, utc_iso

DEFAULT_SCALER = -1


class Theben:
    name = "theben"
    manufacturer = "Theben Smart Energy"
    model = "CONEXA 3.0"
    force_md5 = True
    silent_on_bad_login = True

    def __init__(self, where, user, path="", gateway_id="", note=None, clock=None,
                 limit=None):
        self.where, self.user = where, user
        self.path = path or "/smgw/m2m/%s.sm/json" % (gateway_id or user)
        self.limit = limit

    def probe(self):
        request = self._request("smgw-info", (), "the probe POST " + self.path)
        request.auth = False
        return request

    def cycle(self, mode, since, emit, now=None):
        info = yield self._request("smgw-info")
        firmware = self._firmware(self._object(info, "smgw-info"))
        users = yield self._request("user-info")
        points = self._usage_points(self._object(users, "user-info"))
        for point in points:
            answer = yield self._request("readings", (
                ("database", "origin"), ("usage-point-id", point), ("last-reading", "true")))
            batch = Batch(point, mode, since.get(point))
            self._readings(point, self._object(answer, "readings"), batch)
            answer = None
            for reading in batch.readings():
                emit(reading)
        return firmware

    def _request(self, method, fields=(), what=None):
        body = json_body((("method", method),) + tuple(fields))
        headers = (("Content-Type", "application/json"), ("X-Content-Length", str(len(body))))
        answer = JsonAnswer(self.limit) if self.limit else JsonAnswer()
        return Request("POST", self.path, what or "the %s request" % method, body, headers,
                       answer)

    def _object(self, answer, method):
        doc = answer.load("the %s answer of %s" % (method, self.where))
        if not isinstance(doc, dict) or not isinstance(doc.get(method), dict):
            raise GatewayError("format", "the %s answer of %s has no %r object" % (
                method, self.where, method))
        return doc[method]

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
            raise GatewayError("format", "user-info of %s lists no usage-points" % self.where)
        running = [p for p in points if isinstance(p, dict) and p.get("taf-state") == "running"
                   and isinstance(p.get("usage-point-id"), str)]
        taf7 = [p for p in running if str(p.get("taf-number")) == "7"]
        chosen = [p["usage-point-id"] for p in (taf7 or running)]
        if not chosen:
            raise GatewayError("format", "no running usage point (TAF) for user %r on %s" % (
                self.user, self.where))
        return chosen

    @staticmethod
    def _readings(point, answer, batch):
        channels = answer.get("channels")
        if not isinstance(channels, list):
            raise GatewayError("format", "the readings of %s have no channels list" % point)
        for channel in channels:
            try:
                obis = hex_obis(channel["obis"])
                scaler = channel.get("scaler", DEFAULT_SCALER)
                unit = channel.get("unit")
                unit = unit if isinstance(unit, str) else obis_unit(obis)
                for entry in channel["readings"]:
                    batch.add(utc_iso(entry["capture-time"]), obis,
                              scaled(entry["value"], scaler), unit)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise format_error("usage point %s: a channel the reader does not understand"
                                   % point, e)


FAMILY = Theben
