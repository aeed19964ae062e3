"""The Smart Meter Gateway core (firmware/lib/meterkit/smgw) on CPython and on the MicroPython unix
port: the same code gives the same answers on both. PPC pages read in any chunking give what the
whole page gives; the digest answers are checked by an independent computation; the gateways'
local time is Europe/Berlin's; times, numbers and the per-meter batches are exact."""
import contextlib
import hashlib
import io
import random
from urllib.request import parse_http_list, parse_keqv_list

import pytest

from conftest import run_micropython
from smgw_sim import T0, Gateway, PpcPages, _page

from meterkit.smgw.values import CentralEurope


def both(code):
    """stdout of code on CPython and on MicroPython, which must agree; returns it."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "<both>", "exec"), {})
    assert run_micropython(code) == out.getvalue()
    return out.getvalue()


# -- the gateways' clock --------------------------------------------------------------------

def test_central_europe_is_berlin_time():
    import datetime
    from zoneinfo import ZoneInfo
    berlin, clock = ZoneInfo("Europe/Berlin"), CentralEurope()
    rng = random.Random(17)
    texts = []
    for _ in range(3000):   # 1996 on: the EU rule (the last Sundays of March and October)
        local = datetime.datetime.fromtimestamp(rng.randrange(820454400, 4102444800), berlin)
        texts.append(local.strftime("%Y-%m-%d %H:%M:%S"))
    for year in (2024, 2025, 2026, 2027):   # around both changes, the repeated hour included
        for day in range(24, 32):
            for month in (3, 10):
                texts += ["%d-%02d-%02d %02d:%02d:00" % (year, month, day, h, m)
                          for h in range(5) for m in (0, 30, 59)]
    for text in texts:
        moment = datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=berlin)
        assert clock.iso(text) == moment.isoformat(), text
    epochs = [rng.randrange(820454400, 4102444800) for _ in range(500)]
    for epoch in epochs:
        assert clock.today(epoch) == datetime.datetime.fromtimestamp(epoch, berlin).date().isoformat()
    code = ("from meterkit.smgw.values import CentralEurope\nc = CentralEurope()\n"
            "for t in %r:\n    print(c.iso(t))\nfor e in %r:\n    print(c.today(e))\n"
            % (texts[:400], epochs[:100]))
    both(code)


# -- PPC pages, read as they arrive ---------------------------------------------------------

TRICKY = (b"<!DOCTYPE html><HTML><head><script>if (a < b) { x = '<td>'; }</script>"
          b"<style>td > p {}</style></head><body><!-- <input name='tkn' value='no'> -->"
          b"<FORM><input type=hidden name=tkn value=t0k&amp;en><input name='mid' value=\"m>1\"/>"
          b"</form><p id=\"div_fwversion\">fw <b>1.2</b> &ouml;</p>"
          b"<select id='meterform_select_meter'><option value='mid-0'>01.A.sm<option value=mid-1>"
          b" 02.B.sm </select><table id='metervalue'><tr><th>Zeit<th>Wert</tr>"
          b"<tr><td id='table_metervalues_col_timestamp'>2026-05-16 00:00:00"
          b"<td id='table_metervalues_col_obis'>1-0:1.8.0<td id='table_metervalues_col_wert'>"
          b"<span>1,5</span><tr><td id=table_metervalues_col_obis>1-0:2.8.0</td>"
          b"<td id='table_metervalues_col_wert'>2</td></tr></table>"
          b"<table><tr><td>a</td><td>33918</td><td>c</td></tr></table>"
          b"<table id='metervalue'><tr><td id='table_metervalues_col_obis'>7-0:3.0.0"
          b"<td id='table_metervalues_col_wert'>3 &lt; 4")   # cut short


def sim_pages():
    """The simulated gateway's pages: login, meter list, a profile, a day, the versions."""
    gw = Gateway.__new__(Gateway)
    gw.family, gw.step = "ppc", 0
    gw.now = lambda: T0
    return [_page("<h1>x</h1>", "abc123"), _page(PpcPages.meterform(gw, {}), "t2"),
            _page(PpcPages.profile(gw, {"mid": "mid-0"}), "t3"),
            _page(PpcPages._rows(gw, range(T0 - 86400, T0 + 901, 900), 1), "t4"),
            _page(PpcPages.swversions(gw, {}), "t5"), TRICKY]


READ = """
from meterkit.smgw.ppc import Page
def read(page, sizes):
    rows = []
    p = Page(rows.append, plain_rows=True)
    at, i = 0, 0
    while at < len(page):
        n = sizes[i % len(sizes)]
        p.feed(memoryview(page)[at:at + n])
        at, i = at + n, i + 1
    p.close()
    firmware = p.firmware.encode() if p.firmware else None   # (reprs of non-ASCII text differ)
    return [p.token(), p.inputs.get("mid"), firmware, p.options, p.plain_rows, p.value_rows,
            [sorted(r.items()) for r in rows], p.error]
"""


def test_a_page_read_in_any_chunks_is_read_as_a_whole():
    namespace = {}
    exec(READ, namespace)
    read = namespace["read"]
    for page in sim_pages():
        whole = read(page, [len(page)])
        assert whole[-1] is None
        for size in (1, 2, 3, 7, 64, 511):
            assert read(page, [size]) == whole, size
        for cut in range(1, len(page), max(1, len(page) // 300)):   # every split point, sampled
            assert read(page, [cut, len(page)]) == whole, cut
    tricky = read(TRICKY, [len(TRICKY)])
    assert tricky[:4] == ["t0k&en", "m>1", "fw 1.2 \u00f6".encode(), [("mid-0", "01.A.sm"),
                                                              ("mid-1", "02.B.sm")]]
    assert tricky[4] == [["a", "33918", "c"]] and tricky[5] == 3
    assert tricky[6] == [[("obis", "1-0:1.8.0"), ("timestamp", "2026-05-16 00:00:00"),
                          ("wert", "1,5")], [("obis", "1-0:2.8.0"), ("wert", "2")],
                         [("obis", "7-0:3.0.0"), ("wert", "3 < 4")]]


def test_pages_read_the_same_on_micropython():
    pages = sim_pages()
    code = READ + "for page in %r:\n    print(read(page, [13, 1, 700]))\n" % (pages,)
    out = both(code)
    assert "'abc123'" in out and "33918" in out


# -- digest ---------------------------------------------------------------------------------

def _expected(fields, user, password, method):
    """RFC 7616's response, computed here with hashlib from the header's own fields."""
    algorithm = fields.get("algorithm", "MD5")
    name = "md5" if algorithm.upper().startswith("MD5") else "sha256"

    def h(text):
        return hashlib.new(name, text.encode()).hexdigest()

    ha1 = h("%s:%s:%s" % (user, fields["realm"], password))
    if algorithm.lower().endswith("-sess"):
        ha1 = h("%s:%s:%s" % (ha1, fields["nonce"], fields["cnonce"]))
    ha2 = h("%s:%s" % (method, fields["uri"]))
    if "qop" not in fields:
        return h("%s:%s:%s" % (ha1, fields["nonce"], ha2))
    return h(":".join((ha1, fields["nonce"], fields["nc"], fields["cnonce"], fields["qop"], ha2)))


CHALLENGES = [
    ('Digest realm="SMGW-HAN", qop="auth", nonce="abc", opaque="op", algorithm=MD5', False),
    ('Digest realm="Conexa", qop="auth,auth-int", nonce="n2", algorithm=SHA-256', False),
    ('Digest realm="Conexa", qop="auth", nonce="n3", algorithm=SHA-256', True),   # Theben
    ('Digest realm="CASA", qop="auth", nonce="n4", algorithm=SHA-256-sess', False),
    ('Digest realm="old, \\"quoted\\"", nonce="n5"', False),                    # RFC 2069
]


def test_digest_answers_as_an_independent_computation_expects():
    code = ("from meterkit.smgw.digest import Digest\n"
            "for header, md5 in %r:\n"
            "    d = Digest('han user', 'pa:ss \\u00e4', md5)\n"
            "    print(d.challenge(header))\n"
            "    print(d.authorization('POST', '/smgw/m2m/x.sm/json'))\n"
            "    print(d.authorization('GET', '/cgi-bin/hanservice.cgi'))\n" % (CHALLENGES,))
    lines = run_micropython(code).splitlines()
    for i, (header, md5) in enumerate(CHALLENGES):
        assert lines[3 * i] == "True"
        for line, method, count in ((lines[3 * i + 1], "POST", 1), (lines[3 * i + 2], "GET", 2)):
            fields = parse_keqv_list(parse_http_list(line[len("Digest "):]))
            assert fields["username"] == "han user"
            assert _expected(fields, "han user", "pa:ss \u00e4", method) == fields["response"]
            if md5:
                assert fields["algorithm"] == "MD5"
            if "qop" in fields:
                assert fields["nc"] == "%08x" % count and fields["qop"] == "auth"
    gw = Gateway.__new__(Gateway)   # and as the simulated gateway checks it
    gw.family, gw.user, gw.password, gw.nonces = "ppc", "han user", "pa:ss \u00e4", {"abc"}
    assert gw.authorized("GET", lines[2]) and not gw.authorized("POST", lines[2])


def test_digest_refuses_what_it_cannot_answer():
    out = both("from meterkit.smgw.digest import Digest\nfrom meterkit.smgw import GatewayError\n"
               "d = Digest('u', 'p')\n"
               "print(d.challenge('Basic realm=x'), d.authorization('GET', '/'))\n"
               "for h in ('Digest realm=r, nonce=n, algorithm=SHA-512', "
               "'Digest realm=r, nonce=n, qop=auth-int'):\n"
               "    try:\n        d.challenge(h)\n    except GatewayError as e:\n"
               "        print(e.kind, e.message)\n"
               "print(d.answer('Digest realm=r, nonce=n', False), "
               "d.answer('Digest realm=r, nonce=m', True), "
               "d.answer('Digest realm=r, nonce=m, stale=true', True))\n")
    assert out.splitlines() == [
        "False None",
        "auth the gateway asks for digest algorithm SHA-512; meterkit answers MD5 and SHA-256",
        "auth the gateway asks for digest qop auth-int; meterkit answers qop auth",
        "True False True"]


# -- values ---------------------------------------------------------------------------------

VALUES = """
from meterkit.smgw.values import (Batch, decimal, hex_obis, http_date_iso, scaled, utc_iso,
                                  dlms_unit, epoch_iso)
def tried(f, *args):
    try:
        return str(f(*args))
    except ValueError as e:
        return "ValueError: " + str(e)
for t in ("2026-05-15T22:00:00Z", "2026-05-16T00:00:00.123+02:00", "2026-05-16 00:00:00-05:30",
          "2026-05-16T00:00:00", "2026-02-30T00:00:00Z", "2026-05-16T00:00:00+25:00", 5):
    print(tried(utc_iso, t))
for h in ("Sat, 16 May 2026 00:00:01 GMT", "Sat, 16 Mai 2026 00:00:01 GMT", None, "x",
          "Sat, 16 anF 2026 00:00:01 GMT"):
    print(http_date_iso(h))
for v in ("12345678", "-7", "+3", 12, "1.5", True, "x"):
    print(tried(scaled, v, -1))
print(tried(scaled, "1", 31), tried(scaled, "1", False))
for v in ("123456,7891", " 0.0125 ", "12,3,4", None):
    print(tried(decimal, v))
for o in ("0100010800ff", "0100010800FF.1EMH.sm", "01000108", "zz00010800ff"):
    print(tried(hex_obis, o))
print(dlms_unit(30), dlms_unit(13), dlms_unit(True), dlms_unit("30"), epoch_iso(1778882400))
def show(batch):
    return [(r.meter_id, r.timestamp, [(o, str(v.value), v.unit) for o, v in r.values])
            for r in batch.readings()]
rows = [("2026-05-16T00:15:00+02:00", "a", 3), ("2026-05-16T00:00:00+02:00", "a", 2),
        ("2026-05-16T00:00:00+02:00", "b", 5), ("2026-05-15T23:45:00+02:00", "a", 1)]
for mode, last in (("interval", None), ("interval", 1778882400 - 900), ("daily", None),
                   ("interval", 1778883300)):
    b = Batch("m", mode, last)
    for stamp, obis, value in rows:
        b.add(stamp, obis, value, "kWh")
    print(mode, last, show(b), b.groups)
"""


def test_values_are_exact_and_the_same_on_both():
    lines = both(VALUES).splitlines()
    assert lines[:7] == ["2026-05-15T22:00:00+00:00", "2026-05-16T00:00:00+02:00",
                         "2026-05-16T00:00:00-05:30",
                         "ValueError: an ISO-8601 time without a UTC offset: "
                         "'2026-05-16T00:00:00'",
                         "ValueError: not an ISO-8601 time: '2026-02-30T00:00:00Z'",
                         "ValueError: an ISO-8601 time without a UTC offset: "
                         "'2026-05-16T00:00:00+25:00'", "ValueError: not a time: 5"]
    assert lines[7:12] == ["2026-05-16T00:00:01+00:00", "None", "None", "None", "None"]
    lines = lines[:7] + lines[8:]
    assert lines[11:19] == ["1234567.8", "-0.7", "0.3", "1.2", "ValueError: not an integer: '1.5'",
                            "ValueError: not an integer: True", "ValueError: not an integer: 'x'",
                            "ValueError: not a scaler: 31 ValueError: not a scaler: False"]
    assert lines[19:23] == ["123456.7891", "0.0125", "ValueError: not a number: '12,3,4'",
                            "ValueError: not a number: None"]
    assert lines[23:27] == ["1-0:1.8.0", "1-0:1.8.0",
                            "ValueError: not a 12-digit hex OBIS code: '01000108'",
                            "ValueError: not a 12-digit hex OBIS code: 'zz00010800ff'"]
    assert lines[27] == "Wh m3   2026-05-15T22:00:00+00:00"
    assert lines[28] == "interval None [('m', '2026-05-16T00:15:00+02:00', [('a', '3', 'kWh')])] {}"
    assert lines[29] == ("interval 1778881500 [('m', '2026-05-16T00:00:00+02:00', [('a', '2', "
                         "'kWh'), ('b', '5', 'kWh')]), ('m', '2026-05-16T00:15:00+02:00', "
                         "[('a', '3', 'kWh')])] {}")
    assert lines[30].startswith("daily None [('m', '2026-05-15T23:45:00+02:00', [('a', '1', ")
    assert lines[31] == "interval 1778883300 [] {}"


@pytest.mark.parametrize("family", ["ppc", "theben", "emh"])
def test_every_family_compiles_and_loads_on_micropython(family):
    out = run_micropython("from meterkit.smgw import load\nf = load(%r)\n"
                          "print(f.name, f.force_md5, f.silent_on_bad_login, "
                          "f('gw:443', 'u').probe().path)" % family)
    assert out.split()[0] == family
    assert out.split()[1] == ("True" if family == "theben" else "False")


# -- bad input: only GatewayError, never anything else ----------------------------------------

FUZZ = """
from meterkit.smgw import Cycle, GatewayError, load
from meterkit.exact import Exact
class Lcg:
    def __init__(self, seed):
        self.state = seed
    def below(self, n):
        self.state = (self.state * 1103515245 + 12345) & 0x7FFFFFFF
        return self.state % n
def mutated(rng, data):
    for _ in range(1 + rng.below(6)):
        at = rng.below(len(data) + 1)
        what = rng.below(5)
        if what == 0:
            data = data[:at] + bytes([rng.below(256)]) + data[at + 1:]
        elif what == 1:
            data = data[:at] + b"<>'\\"&;,{}[]:-0.9"[rng.below(16):][:1 + rng.below(3)] + data[at:]
        elif what == 2:
            data = data[:at] + data[at + rng.below(40):]
        elif what == 3:
            data = data[:at]
        else:
            data = data[:at] + data[rng.below(len(data) + 1):][:rng.below(60)] + data[at:]
    return data
def drive(family, answers, rng, rounds, mutate=True):
    outcomes = {}
    for _ in range(rounds):
        emitted = []
        mode = "interval" if rng.below(2) else "daily"
        flow = load(family)("gw:443", "u").cycle(mode, {}, emitted.append, 1778882400)
        cycle = Cycle(flow)
        try:
            request = cycle.next()
            while request is not None:
                body = answers(request)
                if mutate and rng.below(3):
                    body = mutated(rng, body)
                answer = request.answer
                at = 0
                while at < len(body):
                    n = 1 + rng.below(200)
                    answer.feed(memoryview(body)[at:at + n])
                    at += n
                answer.cookies = ["session"] if rng.below(4) else []
                answer.close()
                request = cycle.next()
            outcome = "done"
        except GatewayError as e:
            outcome = e.kind
        for reading in emitted:
            for obis, value in reading.values:
                assert isinstance(value.value, Exact), (obis, value.value)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return sorted(outcomes.items())
"""


def _answers():
    """Each family's answer to each request, as the simulated gateways give them."""
    import json
    from smgw_sim import EmhPages, ThebenPages
    gw = Gateway.__new__(Gateway)
    gw.step, gw.now = 0, lambda: T0
    pages = sim_pages()
    ppc = {"GET": pages[0], "meterform": pages[1], "showMeterProfile": pages[2],
           "showMeterValuesForm": _page("<input type=hidden name=mid value=v>", "t6"),
           "showMeterValues": pages[3], "swversions": pages[4], "logout": _page("bye")}
    gw.family = "theben"
    theben = {}
    for method in ("smgw-info", "user-info"):
        request = json.dumps({"method": method}).encode()

        class Handler:
            headers = {"X-Content-Length": str(len(request))}
            path = "/x"
        gw.requests, gw.mode, gw.user = [], "ok", "u"
        theben[method] = ThebenPages.answer(gw, Handler, "POST", request)[1]
    theben["readings"] = json.dumps({"readings": {"channels": ThebenPages.channels(
        gw, "UP-1EBZ0100123456")}}).encode()
    gw.family = "emh"
    emh = {"list": json.dumps(["1EMH0012345678", "8KAM0000000042"]).encode()}

    class Emh:
        path = "/json/metering/origin/1EMH0012345678/extended"
    gw.requests = []
    emh["extended"] = EmhPages.answer(gw, Emh, "GET", b"")[1]
    return ppc, theben, emh


PICK = """
def ppc_answer(request):
    if request.method == "GET":
        return PPC["GET"]
    action = request.body.split(b"action=")[1].split(b"&")[0].decode()
    return PPC[action]
def theben_answer(request):
    for method in ("smgw-info", "user-info", "readings"):
        if ('"%s"' % method).encode() in request.body:
            return THEBEN[method]
def emh_answer(request):
    return EMH["extended"] if request.path.endswith("/extended") else EMH["list"]
"""


@pytest.mark.parametrize("family", ["ppc", "theben", "emh"])
def test_bad_answers_give_gateway_errors_and_nothing_else(family):
    ppc, theben, emh = _answers()
    code = FUZZ + "PPC, THEBEN, EMH = %r, %r, %r\n" % (ppc, theben, emh) + PICK
    namespace = {}
    exec(compile(code, "<fuzz>", "exec"), namespace)
    clean = namespace["drive"](family, namespace[family + "_answer"], namespace["Lcg"](0), 4,
                               mutate=False)
    assert clean == [("done", 4)]   # unmutated, the cycle completes
    outcomes = dict(namespace["drive"](family, namespace[family + "_answer"],
                                       namespace["Lcg"](7), 600))
    assert outcomes.get("done") and outcomes.get("format"), outcomes
    assert set(outcomes) <= {"done", "format", "session"}
    out = run_micropython(code + "print(drive(%r, %s_answer, Lcg(7), 60))\n" % (family, family),
                          heapsize="16m", timeout=300)
    import ast
    outcomes = dict(ast.literal_eval(out.strip()))   # (anything else would have ended it)
    assert sum(outcomes.values()) == 60 and set(outcomes) <= {"done", "format", "session"}
