"""A simulated smart meter (`meterkit simulate`): realistic, deterministic frames for tests and demos.

Every byte on the wire comes from the core's own encoders (dsmr, p1, security, dlms.apdu, hdlc,
mbus), so the simulator never frames anything a second time. `Meter.next()` returns one push as
the meter sends it plus what it states, for tests to compare with what the firmware decodes.

Physics, all integers: three phase loads random-walk around a base load, a solar array feeds in
around midday, energy registers accumulate joules (power x interval) and show whole Wh, gas counts
litres in 5-minute (DSMR 5) or hourly (DSMR 2.2) steps. The meter clock is CET/CEST.
"""
import random
from datetime import date, datetime, timedelta, timezone

from meterkit import dsmr, security
from meterkit.clock import iso_datetime
from meterkit.dlms import apdu as dlms_apdu
from meterkit.dlms.cosem import datetime_bytes
from meterkit.exact import Exact
from meterkit.link import hdlc, mbus, p1
from meterkit.reading import Value

from .arguments import aes_key, usage_error


def profile_list(text):
    from .fleet import profile_list
    return profile_list(text)

PROFILES = {"dsmr5": 1, "dsmr22": 10, "smarty": 10, "e450": 1, "evn": 5}   # seconds per push
START = 1700000000                           # 2023-11-14 22:13:20 UTC
TARIFF_REGISTERS = (("1-0:1.8.1", "in_t1"), ("1-0:1.8.2", "in_t2"), ("1-0:2.8.1", "out_t1"),
                    ("1-0:2.8.2", "out_t2"))
GBT_BLOCK = 110                              # a block + LLC fits one 128-byte HDLC information field


class Meter:
    """One simulated meter; `next()` -> (frame bytes, expected {OBIS: (value, unit), "timestamp"})."""

    def __init__(self, profile, key=None, auth_key=None, seed=0, start=START, gbt_block=GBT_BLOCK,
                 llc_on_every_block=True):
        """gbt_block, llc_on_every_block (e450): the push's general-block-transfer block size and
        whether each block's frames carry the LLC header. Longer blocks than one information field
        go out as their own run of HDLC segments; L+G meters put the LLC on the first block only."""
        if profile not in PROFILES:
            raise ValueError("unknown profile %r (choose from %s)" % (profile, ", ".join(sorted(PROFILES))))
        self.key, self.auth_key = _key(key), _key(auth_key)
        if profile in ("smarty", "evn") and self.key is None:
            raise ValueError("the %s profile encrypts every frame: a key is needed" % profile)
        self.profile = profile
        self.interval = PROFILES[profile]
        self.rng = random.Random(seed)
        self.clock = start
        self.counter = self.rng.randrange(1, 1 << 20)      # frame counter / invoke id
        self.serial = "%013d" % self.rng.randrange(10 ** 12, 10 ** 13)
        self.title = b"SAG" if profile == "smarty" else b"LGZ" if profile == "e450" else b"KFM"
        self.title += bytes(self.rng.randrange(256) for _ in range(5))
        self.loads = [self.rng.randrange(100, 600) for _ in range(3)]    # W per phase
        self.volts = [self.rng.randrange(2280, 2320) for _ in range(3)]  # decivolts
        self.joules = dict((name, self.rng.randrange(10 ** 6, 2 * 10 ** 7) * 3600)   # Wh -> J
                           for name in ("in_t1", "in_t2", "out_t1", "out_t2", "q_in", "q_out"))
        self.gas_litres = self.rng.randrange(10 ** 6, 9 * 10 ** 6)
        self.gas_slot = None
        self.failures = self.rng.randrange(0, 20)
        self.frames = 0
        self.gbt_block, self.llc_on_every_block = gbt_block, llc_on_every_block
        self._solar()

    # ---- physics ------------------------------------------------------------------------------

    def _solar(self):
        """Per-phase net power (W, + import) from the loads and a midday solar bell."""
        when = self.local()[0]
        minute = when.hour * 60 + when.minute
        sun = max(0, 3600 - abs(minute - 780) * 10) * self.rng.randrange(70, 101) // 100
        self.net = [load - sun // 3 for load in self.loads]
        self.reactive = sum(abs(n) for n in self.net) * self.rng.randrange(5, 30) // 100

    def _step(self):
        """Advance the clock by one interval; energy grows by the power held during it."""
        total = sum(self.net)
        night = self.tariff() == 1
        key = ("in_" if total >= 0 else "out_") + ("t1" if night else "t2")
        self.joules[key] += abs(total) * self.interval
        self.joules["q_in" if total >= 0 else "q_out"] += self.reactive * self.interval
        self.clock += self.interval
        for i in range(3):
            self.loads[i] = max(20, self.loads[i] + self.rng.randrange(-60, 61)
                                + (300 - self.loads[i]) // 20)
            self.volts[i] = min(2450, max(2200, self.volts[i] + self.rng.randrange(-3, 4)))
        self._solar()

    def _gas(self, slot_seconds):
        slot = self.clock - self.clock % slot_seconds
        if slot != self.gas_slot:
            if self.gas_slot is not None:
                self.gas_litres += self.rng.randrange(0, 12) * slot_seconds // 300
            self.gas_slot = slot
        return Exact(self.gas_litres, -3), slot

    def local(self, epoch=None):
        """(local datetime, UTC offset in minutes) for CET/CEST (EU rule: last Sundays, 01:00 UTC)."""
        utc = datetime.fromtimestamp(self.clock if epoch is None else epoch, timezone.utc)
        summer = _last_sunday(utc.year, 3) <= utc < _last_sunday(utc.year, 10)
        offset = 120 if summer else 60
        return utc + timedelta(minutes=offset), offset

    def iso(self, epoch=None, naive=False):
        when, offset = self.local(epoch)
        return iso_datetime(when.year, when.month, when.day, when.hour, when.minute, when.second,
                            None if naive else offset)

    def tariff(self):
        """DSMR tariff 1 (low) at night and at weekends, 2 (normal) otherwise."""
        when = self.local()[0]
        return 1 if when.hour < 7 or when.hour >= 23 or when.weekday() >= 5 else 2

    def wh(self, name):
        return self.joules[name] // 3600

    def power(self, sign, phase=None):
        net = sum(self.net) if phase is None else self.net[phase]
        return max(0, net * sign)

    def amps_centi(self, phase):
        return abs(self.net[phase]) * 1000 // self.volts[phase]

    # ---- frames -------------------------------------------------------------------------------

    def next(self):
        frames, expected = self.next_frames()
        return b"".join(frames), expected

    def next_frames(self):
        """One push as its link frames (the last one is what --garbage corrupts) and expected."""
        if self.frames:
            self._step()
            self.counter += 1
        self.frames += 1
        return getattr(self, "_" + self.profile)()

    def _dsmr5(self):
        values, expected = self._p1_values(5)
        when = expected["timestamp"] = self.iso()
        expected[dsmr.CLOCK] = (when, "")
        return [dsmr.encode_reading("ISK5\\2M550T-1012", values, when)], expected

    def _smarty(self):
        values, expected = self._p1_values(0)
        when = expected["timestamp"] = self.iso()
        expected[dsmr.CLOCK] = (when, "")
        plain = dsmr.encode_reading("SAG5\\253710000_A", values, when)
        auth_key = self.auth_key or security.LUXEMBOURG_AK
        return [security.encode_glo(self.key, plain, self.title, self.counter, 0x30, auth_key)], expected

    def _p1_values(self, version):
        """DSMR 5 (NL: kWh/kW, tariffs, phases, gas) or Smarty (LU: Wh/W, reactive) lines."""
        out, expected = [], {}

        def add(obis, value, unit="", width=0, stamp=None):
            out.append((obis, Value(_dsmr_text(value, unit, width), "", stamp)))
            expected[obis] = (value, unit)

        meter_id = "".join("%02X" % ord(c) for c in "E00" + self.serial)
        if version == 5:
            add("1-3:0.2.8", "50")
            add("0-0:96.1.1", meter_id)
            for obis, name in TARIFF_REGISTERS:
                add(obis, Exact(self.wh(name), -3), "kWh", 6)
            add("0-0:96.14.0", "%04d" % self.tariff())
            add("1-0:1.7.0", Exact(self.power(1), -3), "kW", 2)
            add("1-0:2.7.0", Exact(self.power(-1), -3), "kW", 2)
            add("0-0:96.7.21", Exact(self.failures), "", 5)
        else:
            add("1-3:0.2.8", "42")
            add("0-0:42.0.0", meter_id)
            add("1-0:1.8.0", Exact(self.wh("in_t1") + self.wh("in_t2")), "Wh", 9)
            add("1-0:2.8.0", Exact(self.wh("out_t1") + self.wh("out_t2")), "Wh", 9)
            add("1-0:3.8.0", Exact(self.wh("q_in")), "varh", 9)
            add("1-0:4.8.0", Exact(self.wh("q_out")), "varh", 9)
            add("1-0:1.7.0", Exact(self.power(1)), "W", 9)
            add("1-0:2.7.0", Exact(self.power(-1)), "W", 9)
            add("1-0:3.7.0", Exact(self.reactive), "var", 9)
        for phase, c in enumerate((32, 52, 72)):
            add("1-0:%d.7.0" % c, Exact(self.volts[phase], -1), "V", 3)
        for phase, c in enumerate((31, 51, 71)):
            add("1-0:%d.7.0" % c, Exact(self.amps_centi(phase) // 100), "A", 3)
        if version == 5:
            for phase, c in enumerate((21, 41, 61)):
                add("1-0:%d.7.0" % c, Exact(self.power(1, phase), -3), "kW", 2)
            for phase, c in enumerate((22, 42, 62)):
                add("1-0:%d.7.0" % c, Exact(self.power(-1, phase), -3), "kW", 2)
            add("0-1:24.1.0", Exact(3), "", 3)
            add("0-1:96.1.0", "".join("%02X" % ord(c) for c in "G00" + self.serial))
            gas, slot = self._gas(300)
            add("0-1:24.2.1", gas, "m3", 5, self.iso(slot))
        return out, expected

    def _dsmr22(self):
        """DSMR 2.2: no clock line, no CRC, hourly gas in an IEC profile with a continuation line."""
        lines, expected = [], {"timestamp": None}

        def add(obis, value, unit="", width=5):
            lines.append("%s(%s)" % (obis, _dsmr_text(value, unit, width)))
            expected[obis] = (value, unit)

        add("0-0:96.1.1", "0000" + self.serial[:10])
        for obis, name in TARIFF_REGISTERS:
            add(obis, Exact(self.wh(name), -3), "kWh")
        add("0-0:96.14.0", "%04d" % self.tariff())
        add("1-0:1.7.0", Exact(self.power(1) // 10, -2), "kW", 4)
        add("1-0:2.7.0", Exact(self.power(-1) // 10, -2), "kW", 4)
        add("0-0:17.0.0", Exact(99900, -2), "kW", 4)
        add("0-0:96.3.10", Exact(1), width=0)
        add("0-0:96.13.1", None)
        add("0-1:24.1.0", Exact(3), width=0)
        add("0-1:96.1.0", self.serial[:12])
        gas, slot = self._gas(3600)
        stamp = self.iso(slot, naive=True)
        digits = stamp[2:4] + stamp[5:7] + stamp[8:10] + stamp[11:13] + stamp[14:16] + stamp[17:19]
        lines.append("0-1:24.3.0(%s)(00)(60)(1)(0-1:24.2.1)(m3)" % digits)
        lines.append("(%s)" % _dsmr_text(gas, "", 5))
        expected["0-1:24.3.0"] = (gas, "m3")
        add("0-1:24.4.0", Exact(1), width=0)
        return [p1.encode_telegram("ISk5\\2MT382-1004", lines, crc=False)], expected

    def _dlms_values(self, energy_b):
        """(obis, value, scaler, unit) of an L+G / Kaifa push, and what they mean."""
        values = [("1-0:1.7.0", self.power(1), 0, "W"), ("1-0:2.7.0", self.power(-1), 0, "W"),
                  ("1-%d:1.8.0" % energy_b, self.wh("in_t1") + self.wh("in_t2"), 0, "Wh"),
                  ("1-%d:2.8.0" % energy_b, self.wh("out_t1") + self.wh("out_t2"), 0, "Wh")]
        for phase in range(3):
            values.append(("1-0:%d.7.0" % (32 + 20 * phase), self.volts[phase], -1, "V"))
        for phase in range(3):
            values.append(("1-0:%d.7.0" % (31 + 20 * phase), self.amps_centi(phase), -2, "A"))
        expected = dict((obis, (Exact(v, s), u)) for obis, v, s, u in values)
        return values, expected

    def _e450(self):
        """L+G E450 push: clock + id + registers, in general-block-transfer blocks (by default one
        per HDLC frame, each with the LLC)."""
        when, _ = self.local()
        values, expected = self._dlms_values(1)
        values[:0] = [("0-0:1.0.0", datetime_bytes(when.year, when.month, when.day, when.hour,
                                                   when.minute, when.second), 0, ""),
                      ("0-0:96.1.0", self.serial[-8:], 0, "")]
        values += [("1-1:5.8.0", self.wh("q_in"), 0, "varh"), ("1-1:8.8.0", self.wh("q_out"), 0, "varh")]
        expected.update({"0-0:1.0.0": (self.iso(naive=True), ""), "0-0:96.1.0": (self.serial[-8:], ""),
                         "1-1:5.8.0": (Exact(self.wh("q_in")), "varh"),
                         "1-1:8.8.0": (Exact(self.wh("q_out")), "varh"),
                         "timestamp": self.iso(naive=True)})
        apdu = dlms_apdu.encode_notification(values, invoke_id=self.counter)
        if self.key is not None:
            sc = 0x30 if self.auth_key else 0x20
            apdu = security.encode_glo(self.key, apdu, self.title, self.counter, sc, self.auth_key)
        blocks = dlms_apdu.encode_blocks(apdu, self.gbt_block)
        return [frame for i, block in enumerate(blocks)
                for frame in hdlc.encode(block, llc=self.llc_on_every_block or i == 0)], expected

    def _evn(self):
        """EVN / Netz NOE: flat OBIS list, SC 0x20 (encrypted, no tag), split over M-Bus long frames."""
        when, offset = self.local()
        values, expected = self._dlms_values(0)
        values += [("1-0:13.7.0", 1000 - self.rng.randrange(0, 50), -3, ""),
                   ("0-0:96.1.0", self.serial[-12:], 0, "")]
        expected["1-0:13.7.0"] = (Exact(values[-2][1], -3), "")
        expected["0-0:96.1.0"] = (self.serial[-12:], "")
        expected["timestamp"] = self.iso()
        stamp = datetime_bytes(when.year, when.month, when.day, when.hour, when.minute, when.second, offset)
        apdu = dlms_apdu.encode_notification(values, invoke_id=self.counter, timestamp=stamp, flat=True)
        return mbus.encode(security.encode_glo(self.key, apdu, self.title, self.counter, 0x20)), expected


def _last_sunday(year, month):
    last = date(year, month + 1, 1) - timedelta(days=1)
    last -= timedelta(days=(last.weekday() - 6) % 7)
    return datetime(last.year, last.month, last.day, 1, tzinfo=timezone.utc)


def _dsmr_text(value, unit, width):
    """Exact -> '000123.456*kWh', the whole part zero-padded as meters print it; text as it is."""
    if value is None or isinstance(value, str):
        return value or ""
    whole, dot, frac = str(value).partition(".")
    return whole.rjust(width, "0") + dot + frac + ("*" + unit if unit else "")


def _key(key):
    if not key:
        return None
    key = bytes.fromhex(key.replace(" ", "")) if isinstance(key, str) else bytes(key)
    if len(key) != 16:
        raise ValueError("a key is 16 bytes (32 hex digits)")
    return key


# ---- `meterkit simulate` ------------------------------------------------------------------------

def add_command(commands):
    sim = commands.add_parser("simulate", help="stream the frames of a simulated meter")
    sim.add_argument("--profile", required=True, type=profile_list,
                     metavar="|".join(sorted(PROFILES)),
                     help="the meter; --fleet: a comma-separated list to cycle through")
    sim.add_argument("--key", type=aes_key, help="encryption key (smarty, evn: required; e450: optional)")
    sim.add_argument("--auth-key", type=aes_key, help="authentication key (smarty: Luxembourg AK by default)")
    sim.add_argument("--seed", type=int, default=0, help="values and ids follow from it (default 0)")
    sim.add_argument("--count", type=int, help="stop after N frames (default: run forever)")
    sim.add_argument("--interval", type=float, help="seconds between frames (default: the profile's)")
    sim.add_argument("--speed", type=float, default=1.0, help="run time X times faster")
    sim.add_argument("--garbage", type=float, default=0.0, metavar="RATE",
                     help="insert line noise and corrupt about RATE (0..1) of the frames")
    sim.add_argument("--clients", type=int, default=1, help="--tcp: wait for N clients first (default 1)")
    sim.add_argument("-v", "--verbose", action="store_true", help="one line per frame on stderr")
    sim.add_argument("--fleet", type=int, metavar="N", help="N dongles publishing to --mqtt")
    sim.add_argument("--mqtt", metavar="URL",
                     help="--fleet: the broker, mqtt://[user:password@]host[:port]")
    sim.add_argument("--base", default="smartmeter", help="--fleet: base topic (smartmeter)")
    sim.add_argument("--start", type=int, metavar="EPOCH",
                     help="--fleet: the meters' clocks start here (default now)")
    out = sim.add_mutually_exclusive_group()
    out.add_argument("--tcp", type=int, metavar="PORT", help="serve 127.0.0.1:PORT (0: a free port)")
    out.add_argument("--stdout", action="store_true", help="write the raw bytes to standard output")
    out.add_argument("--pty", action="store_true", help="write to a pseudo-terminal (its path on stderr)")
    sim.set_defaults(run=run)


def run(args):
    from . import simulate_line as line
    if args.fleet is not None:
        from . import fleet
        return fleet.run(args)
    if len(args.profile) != 1 or not (args.tcp is not None or args.stdout or args.pty):
        return usage_error("one --profile and one of --tcp, --stdout, --pty "
                           "(or --fleet N --mqtt URL)")
    args.profile = args.profile[0]
    if args.speed <= 0 or (args.interval is not None and args.interval < 0):
        return usage_error("--speed must be positive and --interval not negative")
    if not 0 <= args.garbage <= 1:
        return usage_error("--garbage is a rate between 0 and 1")
    try:
        meter = Meter(args.profile, args.key, args.auth_key, seed=args.seed)
        if args.tcp is not None:
            sink = line.TcpSink(args.tcp, line.stderr_line)
        else:
            sink = line.PtySink(line.stderr_line) if args.pty else line.StdoutSink()
    except (ValueError, OSError) as error:
        return usage_error(str(error))
    try:
        if args.tcp is not None:
            sink.wait(args.clients)
        line.stream(meter, sink, args.count, args.interval, args.speed, args.garbage,
                    line.stderr_line if args.verbose else None)
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        sink.close()
    return 0
