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
from . import GatewayError
from .exchange import JsonAnswer, Request, quote
from .values import Batch, dlms_unit, format_error, hex_obis, scaled, utc_iso

ORIGIN = "/json/metering/origin/"
_ACCEPT = (("Accept", "application/json"),)


class Emh:
    name = "emh"
    manufacturer = "EMH metering"
    model = "CASA 1.1"
    force_md5 = False
    silent_on_bad_login = False

    def __init__(self, where, user, path="", gateway_id="", note=None, clock=None,
                 limit=None):
        self.where, self.user = where, user
        self.root = path + ORIGIN   # a path in the URL goes before the API's own
        self.limit = limit

    def probe(self):
        return Request("GET", self.root, "the probe GET " + self.root, headers=_ACCEPT,
                       auth=False)

    def cycle(self, mode, since, emit, now=None):
        listed = yield self._get(self.root)
        meters = listed.load("the meter list from %s" % self.where)
        if not isinstance(meters, list) or not all(isinstance(m, str) and m for m in meters):
            raise GatewayError("format", "the meter list of %s is not a list of ids" % self.where)
        if not meters:
            raise GatewayError("format", "the gateway at %s lists no meters for user %r" % (
                self.where, self.user))
        listed = None
        for meter in meters:
            what = "the values of %s" % meter
            answer = yield self._get(self.root + quote(meter) + "/extended", what)
            batch = Batch(meter, mode, since.get(meter))
            self._readings(meter, answer.load("%s from %s" % (what, self.where)), batch)
            answer = None
            for reading in batch.readings():
                emit(reading)
        return None

    def _get(self, path, what="the meter list"):
        answer = JsonAnswer(self.limit) if self.limit else JsonAnswer()
        return Request("GET", path, what, headers=_ACCEPT, answer=answer)

    @staticmethod
    def _readings(meter, answer, batch):
        try:
            stamp = utc_iso(answer.get("capture_time") or answer["timestamp"])
            for item in answer["values"]:
                batch.add(stamp, hex_obis(item["logical_name"]),
                          scaled(item["value"], item.get("scaler", 0)),
                          dlms_unit(item.get("unit")))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise format_error("the values of meter %s are not what an EMH CASA sends" % meter,
                               e)


FAMILY = Emh
