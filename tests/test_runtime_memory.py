"""The whole runtime (reader, spool, publisher with HA discovery + harmonized topics, diagnostics,
web server listening, history, trial watch and HA update entity) of a dongle past its setup, for
5000 DSMR5 telegrams on the MicroPython unix port with a small fixed heap: no MemoryError, every
reading published, no upward trend in the heap used after GC.

The heap is 208 KB (it was 384 KB, then 288 KB, then 240 KB), not the 128 KB the issue asks for: on
the 64-bit unix port every loaded module keeps its bytecode and qstrs in the heap (94 KB for the 26
modules this run holds, `tools/bench_size.py`'s "runtime, DSMR5" row; frozen, as `make firmware`
builds the device, ~49 KB of it would stay in RAM), the live set after GC is ~150 KB while it runs,
and the smallest heap that passes is 168-184 KB (`tools/bench_runtime.py --smallest`; both in `make
bench`); 208 KB keeps a margin for a shared CI machine. The telegrams come at ~80/s, faster than the
publisher's ~20 QoS 1 messages per reading can go, so the spool spills to its ring file the whole
time: the hardest case for the heap. The raw per-value topics (~45 messages a reading) are off to
keep the run near a minute; test_runtime_e2e.py covers them. The web server only listens in that
run; the second test opens the page while the runtime works, in 16 KB more, where the handlers
(imported per request, dropped after 30 s idle or when the heap runs out) mostly fit: where they do
not, that must cost a 503, never a crash."""
import http.client
import json
import threading
import time

from broker import Broker
from firmware_harness import Firmware, Meter, MeterLine
from web_harness import call

COUNT = 5000
HEAP_KB = 208
CONFIG = {"meter": {"profile": "dsmr5"},
          "publish": {"diagnostics_interval": 2, "raw": False, "harmonized": True,
                      "ha_discovery": True},
          "admin": {"password": "a-configured-dongle"}}   # past its setup: normal mode


def test_5000_telegrams_in_a_small_heap_without_growth(tmp_path):
    line = MeterLine(Meter("dsmr5", seed=11), count=COUNT, interval=0.012)
    with Broker(tmp_path) as broker:
        fw = Firmware(tmp_path, CONFIG, broker.port, line.port, heapsize="%dk" % HEAP_KB,
                      compiled=True)
        assert "web: http://localhost:%d/" % fw.http_port in fw.start().wait_for("web: ")
        stats = fw.wait(timeout=600)   # too many MemoryErrors would end it with a traceback
    assert stats["out_of_memory"] == 0   # and none at all restarted a task
    assert stats["frames_ok"] == stats["readings"] == stats["published"] == COUNT
    assert stats["dropped"] == 0
    used = [HEAP_KB * 1024 - d["heap_free"] for d in fw.diagnostics()[1:-1]]   # after gc.collect()
    assert len(used) >= 8
    half = len(used) // 2
    assert max(used[half:]) <= max(used[:half]) + 16 * 1024, used


def browse(port, rounds, statuses, live):
    """What a phone does with the page, a few times: the page, a login, the API calls. A
    connection the dongle had to cut (out of memory halfway through an answer) counts as "cut"."""
    def request(method, path, body=None, headers=None):
        try:
            status, response_headers, data = call(port, method, path, body, headers)
        except (OSError, http.client.HTTPException):
            status, response_headers, data = "cut", {}, b""
        statuses.append(status)
        return status, response_headers, data

    for _ in range(rounds):
        request("GET", "/")
        status, headers, _ = request("POST", "/api/login", {"password": CONFIG["admin"]["password"]})
        if status == 200:
            cookie = {"Cookie": headers["set-cookie"].split(";")[0]}
            for path in ("/api/status", "/api/live", "/api/history?range=day"):
                status, _, body = request("GET", path, headers=cookie)
                if path == "/api/live" and status == 200:
                    live.append(json.loads(body))
        time.sleep(1)


def test_page_views_while_it_runs_crash_nothing(tmp_path):
    """Someone opens the page while the runtime works: the web handlers (~38 KB here) load next
    to it, in 16 KB more than the first test needs. Where the heap still runs out, a request gets
    a 503 (or, halfway through an answer, a cut connection) and a task is restarted with the
    handlers dropped: nothing crashes, every queued reading is published, and readings are lost
    only where a restart of the reader dropped the chunk it held (at most two telegrams each)."""
    count = 1500
    line = MeterLine(Meter("dsmr5", seed=12), count=count, interval=0.012)
    statuses, live = [], []
    with Broker(tmp_path) as broker:
        fw = Firmware(tmp_path, CONFIG, broker.port, line.port, heapsize="%dk" % (HEAP_KB + 16),
                      compiled=True)
        fw.start().wait_for("web: ")
        phone = threading.Thread(target=browse, args=(fw.http_port, 3, statuses, live))
        phone.start()
        stats = fw.wait(timeout=300)     # a MemoryError that got through ends it with a traceback
        phone.join()
    assert len(statuses) >= 6 and set(statuses) <= {200, 503, "cut"}, statuses
    assert live and "power_in" in live[-1]["harmonized"], statuses   # the page showed the meter
    assert stats["published"] >= stats["readings"] >= count - 2 * stats["out_of_memory"]
    assert stats["dropped"] == 0
