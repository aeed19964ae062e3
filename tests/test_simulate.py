"""meterkit simulate: every profile decodes to exactly what it states; physics; the line; the CLI."""
import os
import random
import select
import socket
import subprocess
import sys
import time

import pytest

from meterkit.clock import epoch_seconds
from meterkit.reading import Reading
from meterkit.security import parse_glo
from meterkit.stream import StreamDecoder
from meterkit_host.simulate import PROFILES, Meter
from meterkit_host.simulate_line import FRAME_STARTS, garble

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
SETUPS = [("dsmr5", None, None), ("dsmr22", None, None), ("smarty", KEY, None), ("smarty", KEY, AK),
          ("e450", None, None), ("e450", KEY, AK), ("e450", KEY, None), ("evn", KEY, None)]
CLI = [sys.executable, "-m", "meterkit_host"]


def decoded(reading):
    values = dict((obis, (value.value, value.unit)) for obis, value in reading.values)
    values["timestamp"] = reading.timestamp
    return values


def run_meter(profile, key, auth_key, count, seed=0, chunked=False):
    """[(reading, expected)] for `count` pushes, fed as a UART would deliver them."""
    meter = Meter(profile, key, auth_key, seed=seed)
    decoder = StreamDecoder(key, auth_key)
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        data, expected = meter.next()
        events = []
        while data:
            size = rng.randrange(1, 64) if chunked else len(data)
            events += decoder.feed(data[:size])
            data = data[size:]
        assert [type(e) for e in events] == [Reading], [getattr(e, "message", e) for e in events]
        out.append((events[0], expected))
    return out


@pytest.mark.parametrize("profile, key, auth_key", SETUPS)
def test_every_frame_decodes_to_what_the_meter_states(profile, key, auth_key):
    for reading, expected in run_meter(profile, key, auth_key, 25, seed=7, chunked=True):
        assert decoded(reading) == expected
        assert not reading.warnings
        assert reading.meter_id
        if key and (auth_key or profile == "smarty"):
            assert reading.authenticated is True
        elif key:
            assert reading.authenticated is False    # SC 0x20: encrypted, no tag


def test_wrong_key_is_rejected():
    meter = Meter("e450", KEY, AK)
    decoder = StreamDecoder(bytes(16), AK)
    events = decoder.feed(meter.next()[0])
    assert decoder.counts["auth"] == 1 and decoder.counts["ok"] == 0, events


def test_same_seed_same_bytes_other_seed_other_meter():
    a, b, c = Meter("dsmr5", seed=1), Meter("dsmr5", seed=1), Meter("dsmr5", seed=2)
    first = [a.next()[0] for _ in range(5)]
    assert first == [b.next()[0] for _ in range(5)]
    assert first != [c.next()[0] for _ in range(5)]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_clock_advances_by_the_interval(profile):
    meter = Meter(profile, KEY, seed=3)
    if profile == "dsmr22":   # DSMR 2.2 telegrams carry no clock line
        assert [meter.next()[1]["timestamp"] for _ in range(3)] == [None] * 3
        assert meter.clock == 1700000000 + 2 * PROFILES[profile]
        return
    stamps = [epoch_seconds(meter.next()[1]["timestamp"]) for _ in range(20)]
    assert [b - a for a, b in zip(stamps, stamps[1:])] == [PROFILES[profile]] * 19


def test_energy_follows_power_exactly():
    """Import energy grows by the import power held over each interval (whole Wh shown)."""
    meter = Meter("e450", seed=5)
    joules, first = 0, None
    previous = None
    for _ in range(600):
        expected = meter.next()[1]
        energy = expected["1-1:1.8.0"][0]
        assert energy.exponent == 0
        if previous is not None:
            assert energy.mantissa >= previous[0]
            joules += previous[1] * meter.interval
        else:
            first = energy.mantissa
        previous = (energy.mantissa, expected["1-0:1.7.0"][0].mantissa)
    assert joules > 3600 * 10   # it did consume
    assert abs((previous[0] - first) * 3600 - joules) < 3600


def test_values_are_plausible_and_vary():
    meter = Meter("dsmr5", seed=11)
    frames = [meter.next()[1] for _ in range(300)]
    volts = [f["1-0:32.7.0"][0] for f in frames]
    assert all(2200 <= v.mantissa <= 2450 and v.exponent == -1 for v in volts)
    powers = set(f["1-0:1.7.0"][0] for f in frames)
    assert len(powers) > 50
    gas = [f["0-1:24.2.1"][0].mantissa for f in frames]
    assert gas == sorted(gas) and gas[-1] > gas[0]   # 300 s: at least one 5-minute step
    for name in ("1-0:1.8.1", "1-0:1.8.2", "1-0:2.8.1", "1-0:2.8.2"):
        series = [f[name][0].mantissa for f in frames]
        assert series == sorted(series)


@pytest.mark.parametrize("profile", ["smarty", "evn", "e450"])
def test_frame_counters_increase(profile):
    meter = Meter(profile, KEY, AK if profile == "e450" else None)
    counters = []
    for _ in range(5):
        frames, _ = meter.next_frames()
        if profile == "smarty":
            counters.append(parse_glo(frames[0]).counter)
        else:
            counters.append(meter.counter)
    assert counters == list(range(counters[0], counters[0] + 5))


def test_keys_are_checked():
    with pytest.raises(ValueError, match="key is needed"):
        Meter("evn")
    with pytest.raises(ValueError, match="16 bytes"):
        Meter("smarty", b"short")
    with pytest.raises(ValueError, match="unknown profile"):
        Meter("ferraris")


def count_errors(decoder):
    return sum(n for kind, n in decoder.counts.items() if kind != "ok")


@pytest.mark.parametrize("profile", ["dsmr5", "smarty", "e450", "evn"])
def test_garbage_gives_one_error_per_corrupted_push(profile):
    meter = Meter(profile, KEY, AK if profile == "e450" else None, seed=2)
    decoder = StreamDecoder(KEY, AK if profile == "e450" else None)
    rng = random.Random(4)
    corrupted = 0
    for _ in range(60):
        frames, _ = meter.next_frames()
        data, bad = garble(frames, 0.3, rng)
        corrupted += bad
        decoder.feed(data)
    assert 5 < corrupted < 35
    assert decoder.counts["ok"] == 60 - corrupted
    assert decoder.skipped > 0
    if profile == "evn":   # the surviving first segment is reported again when the next push begins
        assert corrupted <= count_errors(decoder) <= 2 * corrupted
    else:
        assert count_errors(decoder) == corrupted


def test_noise_has_no_frame_start_bytes():
    rng = random.Random(0)
    for _ in range(50):
        data, _ = garble([b"\x7e" * 8], 1.0, rng)
        data = data[:-8]
        assert data and not set(data) & set(FRAME_STARTS)


def simulate(*args, **kwargs):
    return subprocess.Popen(CLI + ["simulate"] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kwargs)


def stderr_line(proc, timeout=20):
    ready, _, _ = select.select([proc.stderr], [], [], timeout)
    assert ready, "no line on stderr"
    return proc.stderr.readline().decode().strip()


def test_tcp_server_streams_to_two_clients():
    proc = simulate("--profile", "e450", "--key", KEY.hex(), "--auth-key", AK.hex(), "--tcp", "0",
                    "--clients", "2", "--count", "5", "--interval", "0.05")
    try:
        line = stderr_line(proc)
        assert line.startswith("listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        clients = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(2)]
        received = []
        for client in clients:
            data = b""
            while True:
                chunk = client.recv(4096)
                if not chunk:
                    break
                data += chunk
            client.close()
            received.append(data)
        assert proc.wait(timeout=20) == 0
    finally:
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert received[0] == received[1]
    decoder = StreamDecoder(KEY, AK)
    events = decoder.feed(received[0]) + decoder.flush()
    assert decoder.counts["ok"] == 5 and len(events) == 5


def test_pty_is_readable_with_os_read():
    proc = simulate("--profile", "dsmr5", "--pty", "--interval", "0.05", "--count", "400")
    try:
        path = stderr_line(proc)
        assert path.startswith("/dev/pts/")
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY)
        decoder = StreamDecoder()
        readings = []
        deadline = time.monotonic() + 20
        while len(readings) < 3 and time.monotonic() < deadline:
            if select.select([fd], [], [], 1)[0]:
                readings += [e for e in decoder.feed(os.read(fd, 4096)) if isinstance(e, Reading)]
        os.close(fd)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert len(readings) >= 3 and decoder.counts["crc"] == 0
    assert readings[0].get("1-0:1.8.1").unit == "kWh"


def test_cli_end_to_end_with_garbage_counted():
    sim = subprocess.run(CLI + ["simulate", "--profile", "dsmr5", "--stdout", "--count", "40",
                                "--interval", "0", "--garbage", "0.25", "-v", "--seed", "9"],
                         capture_output=True, timeout=60)
    assert sim.returncode == 0
    lines = sim.stderr.decode().splitlines()
    assert len(lines) == 40 and lines[0].startswith("frame 1: ")
    corrupted = sum("(corrupted)" in line for line in lines)
    assert corrupted > 0
    decoded_lines = []
    for runtime in ("cpython", "micropython"):
        dec = subprocess.run(CLI + ["decode", "--runtime", runtime, "-"], input=sim.stdout,
                             capture_output=True, timeout=120)
        assert dec.returncode == 0, dec.stderr
        decoded_lines.append(dec.stdout.decode().splitlines())
    assert decoded_lines[0] == decoded_lines[1]
    errors = [line for line in decoded_lines[0] if line.startswith('{"error"')]
    assert len(errors) == corrupted and all('"crc"' in line for line in errors)
    assert len(decoded_lines[0]) == 40


def test_cli_usage_errors():
    for args, message in ((["--profile", "evn", "--stdout"], "key is needed"),
                          (["--profile", "dsmr5", "--stdout", "--garbage", "2"], "--garbage"),
                          (["--profile", "dsmr5", "--stdout", "--speed", "0"], "--speed")):
        proc = subprocess.run(CLI + ["simulate"] + args, capture_output=True, timeout=30)
        assert proc.returncode == 2 and message in proc.stderr.decode()
    proc = subprocess.run(CLI + ["simulate", "--profile", "dsmr5"], capture_output=True, timeout=30)
    assert proc.returncode == 2   # no output chosen
