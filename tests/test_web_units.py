"""The web side's pure parts on CPython and the MicroPython unix port: request parsing, path
safety, password hashing and sessions, static file lookup, the bounded history."""
import sys

import pytest

from conftest import CORE, run_micropython

sys.path.insert(0, str(CORE))
from dongle import history  # noqa: E402
from dongle.web import auth, http, static  # noqa: E402
from meterkit.exact import Exact  # noqa: E402


@pytest.mark.parametrize("path", ["/../x", "/a/../../x", "/%2e%2e/x", "/%2E%2E%2Fx", "//etc",
                                  "/a\\..\\b", "/x%00.html", "/%zz", "/%e2%28", "/./x", "/a%2"])
def test_paths_that_could_climb_out_are_refused(path):
    with pytest.raises(http.HttpError) as refused:
        http.clean_path(path)
    assert refused.value.status == 400


def test_clean_paths_decode():
    assert http.clean_path("/caf%C3%A9/a%20b") == "/café/a b"
    assert static.safe_name("/js/app.js") == "js/app.js"
    for path in ("/", "/.env", "/a/b/c", "/a b", "/café", "/x/"):
        assert static.safe_name(path) is None


def test_head_parsing_keeps_only_the_headers_it_needs():
    request = http.parse_head(b"POST /api/login?x=1&y=a+b HTTP/1.1\r\nHost: h\r\n"
                              b"Content-Length: 12\r\nCookie: a=1; mk_session=abc\r\nX-Other: 1")
    assert (request.method, request.path, request.param("y")) == ("POST", "/api/login", "a b")
    assert request.headers == {"content-length": "12", "cookie": "a=1; mk_session=abc"}
    assert auth.cookie_value(request.header("cookie")) == "abc"
    assert http.body_length(request, 100) == 12
    with pytest.raises(http.HttpError) as big:
        http.body_length(request, 10)
    assert big.value.status == 413


def test_passwords_are_salted_hashes_and_checked_in_constant_time():
    stored = auth.hash_password("correct horse")
    assert auth.is_hash(stored) and "correct" not in stored
    assert stored != auth.hash_password("correct horse")          # salted
    assert auth.check_password("correct horse", stored)
    assert not auth.check_password("correct horsE", stored)
    assert not auth.check_password(None, stored) and not auth.check_password("x", "")
    assert auth.basic_password("Basic YWRtaW46c2VjcmV0IHB3") == "secret pw"
    assert auth.basic_password("Basic cm9vdDpzZWNyZXQ=") is None    # user root
    assert auth.basic_password("Basic !!!") is None


def test_sessions_are_bounded_and_expire():
    now = [0]
    sessions = auth.Sessions(lambda: now[0])
    tokens = [sessions.new() for _ in range(auth.MAX_SESSIONS + 2)]
    assert not sessions.valid(tokens[0]) and sessions.valid(tokens[-1])
    assert not sessions.valid(None) and not sessions.valid("")
    now[0] = auth.SESSION_S + 1
    assert not sessions.valid(tokens[-1])


def test_history_rings_are_bounded_and_survive_a_restart(tmp_path):
    path = str(tmp_path / "history")
    h = history.History(path)
    start = 1_700_000_000 - 1_700_000_000 % 86400
    for i in range(3 * 86400 // 60):              # three days, a reading a minute
        now = start + i * 60
        h.add(now, 1000 + i % 7, 5_000_000 + i * 20)
    assert len(h.points("hour")) == 60 and len(h.points("day")) == 288   # one per minute, 24 h
    month = h.points("month")
    assert [p[0] for p in month] == [start, start + 86400, start + 2 * 86400]
    assert month[1][1] == Exact(28800, -3)        # 1440 readings * 20 Wh = 28.8 kWh
    h.save()
    again = history.History(path)
    assert again.points("day") == h.points("day") and again.points("month") == h.points("month")
    assert history.to_int(Exact(12345, -1)) == 1235 and history.to_int(Exact(-15, -1)) == -2
    with pytest.raises(ValueError):
        h.points("year")


def test_the_same_on_micropython():
    code = """
from dongle.web import http, auth
from dongle import history
for p in ("/../x", "/%2e%2e/x", "/ok/a%20b", "//x", "/%e2%28"):
    try:
        print(http.clean_path(p))
    except http.HttpError as e:
        print(e.status)
r = http.parse_head(b"GET /a?b=c%20d HTTP/1.0\\r\\nCookie: mk_session=t")
print(r.path, r.param("b"), auth.cookie_value(r.header("cookie")))
s = auth.hash_password("pw-pw-pw-pw", b"12345678")
print(s, auth.check_password("pw-pw-pw-pw", s), auth.check_password("x", s))
h = history.History()
for i in range(100):
    h.add(1700000000 + i * 10, 500 + i, 1000 + i)
print(h.points("hour")[-1], h.points("month"))
"""
    lines = run_micropython(code).splitlines()
    assert lines[:5] == ["400", "400", "/ok/a b", "400", "400"]
    assert lines[5] == "/a c d t"
    assert lines[6] == "%s True False" % auth.hash_password("pw-pw-pw-pw", b"12345678")
    h = history.History()
    for i in range(100):
        h.add(1700000000 + i * 10, 500 + i, 1000 + i)
    assert lines[7].replace("Exact(", "").replace(")", "") == \
        str(h.points("hour")[-1]) + " " + str(h.points("month")).replace("Exact(", "").replace(")", "")
