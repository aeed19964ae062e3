"""EMH CASA gateways: JSON under /json/metering/.

    GET /json/metering/origin/                -> ["<meter id>", …]
    GET /json/metering/origin/<id>/extended   -> {"capture_time": "…+01:00", "timestamp": …,
                                                  "values": [{"logical_name":
                                                  "0100010800ff.<id>.sm", "value": "12345678",
                                                  "scaler": -1, "unit": 30}]}

Each request answers its own digest challenge (the API keeps no session, so there is nothing to
log out of: the connection is closed after the cycle). `unit` is the DLMS unit number (27 W,
30 Wh, 33 A, 35 V, 13 m3, …) and `scaler` its power of ten. The gateway's firmware version is in
no answer the open clients read, so it is not shown.
"""
import json
from urllib.parse import quote

from .values import GatewayError, Snapshot, dlms_unit, hex_obis, readings_by_time, scaled, utc_iso

ORIGIN = "/json/metering/origin/"


class Emh:
    name = "emh"
    manufacturer = "EMH metering"
    model = "CASA 1.1"
    force_md5 = False

    def __init__(self, http, spec, zone):
        self.http, self.spec = http, spec
        self.root = http.path + ORIGIN

    @staticmethod
    def probe_request(http, spec):
        return "GET", http.path + ORIGIN, {}

    def read(self, mode, since):
        try:
            meters = self._get(self.root, "the meter list")
            if not isinstance(meters, list) or not all(isinstance(m, str) and m for m in meters):
                raise GatewayError("format", "the meter list of %s is not a list of ids" %
                                   self.http.where)
            if not meters:
                raise GatewayError("format", "the gateway at %s lists no meters for user %r" % (
                    self.http.where, self.spec["user"]))
            readings = []
            for meter in meters:
                answer = self._get(self.root + quote(meter, safe="") + "/extended",
                                   "the values of %s" % meter)
                readings += self._readings(meter, answer, mode, since.get(meter))
            return Snapshot(None, None, readings)
        finally:
            self.http.close()

    def _get(self, path, what):
        page = self.http.request("GET", path, what, headers={"Accept": "application/json"})
        try:
            return json.loads(page.body.decode("utf-8"))
        except ValueError as e:
            raise GatewayError("format", "%s from %s is not JSON (%s; %d bytes)" % (
                what, self.http.where, e, len(page.body)))

    def _readings(self, meter, answer, mode, last):
        try:
            stamp = utc_iso(answer.get("capture_time") or answer["timestamp"])
            values = []
            for item in answer["values"]:
                obis = hex_obis(item["logical_name"])
                values.append((obis, scaled(item["value"], item.get("scaler", 0)),
                               dlms_unit(item.get("unit"))))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise GatewayError("format", "the values of meter %s are not what an EMH CASA sends "
                               "(%s: %s)" % (meter, type(e).__name__, e))
        return readings_by_time(meter, {stamp: values}, mode, last)
