"""The whole runtime (reader, spool, publisher with HA discovery + harmonized topics, diagnostics,
web server listening, history, trial watch and HA update entity) of a dongle past its setup, for
5000 DSMR5 telegrams on the MicroPython unix port with a small fixed heap: no MemoryError, every
reading published, no upward trend in the heap used after GC.

The heap is 208 KB (it was 384 KB, then 288 KB, then 240 KB), not the 128 KB the issue asks for:
on the 64-bit unix port every loaded module keeps its bytecode and qstrs in the heap (~95 KB for
this runtime, what freezing or a ROMFS image keeps in flash on the device), the live set after GC
is ~150 KB while it runs, and the smallest heap that passes is 168-184 KB (`tools/bench_runtime.py
--smallest`, in `make bench`); 208 KB keeps a margin for a shared CI machine. The telegrams come
at ~80/s, faster than the publisher's ~20 QoS 1 messages per reading can go, so the spool spills
to its ring file the whole time: the hardest case for the heap. The raw per-value topics (~45
messages a reading) are off to keep the run near a minute; test_runtime_e2e.py covers them. The
web server only listens here: its handlers, imported per request and dropped after 30 s idle, are
exercised by test_web_*.py."""
from broker import Broker
from firmware_harness import Firmware, Meter, MeterLine

COUNT = 5000
HEAP_KB = 208


def test_5000_telegrams_in_a_small_heap_without_growth(tmp_path):
    line = MeterLine(Meter("dsmr5", seed=11), count=COUNT, interval=0.012)
    cfg = {"meter": {"profile": "dsmr5"},
           "publish": {"diagnostics_interval": 2, "raw": False, "harmonized": True,
                       "ha_discovery": True},
           "admin": {"password": "a-configured-dongle"}}   # past its setup: normal mode
    with Broker(tmp_path) as broker:
        fw = Firmware(tmp_path, cfg, broker.port, line.port, heapsize="%dk" % HEAP_KB,
                      compiled=True)
        assert "web: http://localhost:%d/" % fw.http_port in fw.start().wait_for("web: ")
        stats = fw.wait(timeout=600)     # a MemoryError would end it with a traceback
    assert stats["frames_ok"] == stats["readings"] == stats["published"] == COUNT
    assert stats["dropped"] == 0
    used = [HEAP_KB * 1024 - d["heap_free"] for d in fw.diagnostics()[1:-1]]   # after gc.collect()
    assert len(used) >= 8
    half = len(used) // 2
    assert max(used[half:]) <= max(used[:half]) + 16 * 1024, used
