"""German Smart Meter Gateways (BSI TR-03109), their HAN consumer interface: the protocol side,
shared by the host (`meterkit smgw`, requests) and the dongle (profile smgw, socket + tls).

No I/O here. A family's cycle is a generator that yields exchange.Request objects and gets each
one's answer back; the runtime does the HTTPS (pinned certificate, digest.Digest, cookies):

    family = load("ppc")(where, user, path, gateway_id, note)
    cycle = Cycle(family.cycle(mode, since, emit))     # emit(Reading) for every new reading
    request = cycle.next()
    while request is not None:                         # the runtime's transport:
        ... send request, feed the body into request.answer ...   (GatewayError: next(error))
        request = cycle.next()
    cycle.result                                       # the gateway's firmware text, or None

    ppc.py      PPC: the HTML pages of /cgi-bin/hanservice.cgi (html.py reads them as they come)
    theben.py   Theben CONEXA: JSON methods at /smgw/m2m/<id>.sm/json
    emh.py      EMH CASA: JSON at /json/metering/origin/
    values.py   exact values, OBIS codes, capture times, one Reading per meter and time
"""
from meterkit.errors import DecodeError

FAMILIES = ("ppc", "theben", "emh")


class GatewayError(DecodeError):
    """A cycle that failed. kind: auth, cert_changed, tls, unreachable, timeout, http, session,
    format, busy, lockout; the message says what happened and what to do."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def load(name):
    """The family class of a name in FAMILIES (its module is imported on use)."""
    if name not in FAMILIES:
        raise ValueError("unknown gateway family %r (known: %s)" % (name, ", ".join(FAMILIES)))
    module = __import__("meterkit.smgw." + name, None, None, ("FAMILY",))
    return module.FAMILY


class Cycle:
    """Runs a family's cycle generator one request at a time."""

    def __init__(self, flow):
        self.flow = flow
        self.result = None
        self._sent = None

    def next(self, error=None):
        """The next Request, or None when the cycle is done (see result). error: what the
        transport raised for the last request; the cycle may still log out, then it is raised."""
        try:
            if error is not None:
                request = self.flow.throw(error)
            else:
                request = self.flow.send(self._sent)
        except StopIteration as e:
            self.result = e.args[0] if e.args else None
            return None
        self._sent = request.answer
        return request
