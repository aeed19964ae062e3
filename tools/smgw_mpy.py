"""One cycle of the dongle's profile smgw (firmware/lib/dongle/smgw.py) on MicroPython, outside the
app: what tools/bench_smgw.py runs to find the smallest heap a cycle of each family runs in.

    micropython -X heapsize=64k tools/smgw_mpy.py FAMILY HOST PORT USER PASSWORD DATA_DIR [MODE]
    (FAMILY: ppc, theben, emh; MODE: interval (default) or daily; FAMILY none: the imports
    alone; tls-FAMILY: the handshake and the family's probe, no login)

Prints one "reading <meter> <capture time> <values>" line per reading the cycle queued, then
"result ok" (or the cycle's error) and "heap_free <bytes>". The spool is a stand-in that counts:
the figure is the cycle's, not the flash ring's.
"""
import asyncio
import gc
import sys


class Counted:
    """The spool's put(), keeping nothing."""

    def __init__(self):
        self.items = 0

    def put(self, item):
        self.items += 1


def shown(reading, item):
    print("reading", reading.meter_id, reading.timestamp, len(reading.values))


async def probe(family, host, port):
    from meterkit.smgw import load
    from dongle.smgw_link import Link
    link = Link(host, port, "", "", "", 30000)
    try:
        await link.exchange(load(family)("%s:%d" % (host, port), "").probe())
        print("result ok ")
    except Exception as e:   # the probe's 401: the handshake is done, which is what counts
        print("result ok " if "HTTP 401" in str(e) else "result %s" % e)
    finally:
        link.close()


def main(args):
    family, host, port, user, password, data = args[:6]
    gc.threshold((gc.mem_alloc() + gc.mem_free()) // 32)   # as the app runs (app.GC_SHARE)
    gc.collect()
    if family == "none":   # the modules alone: the baseline of the bench
        import dongle.smgw  # noqa: F401
        gc.collect()
        print("heap_free", gc.mem_free())
        return
    if family.startswith("tls-"):
        asyncio.run(probe(family[4:], host, int(port)))
        gc.collect()
        print("heap_free", gc.mem_free())
        return
    from dongle.smgw import Gateway
    settings = {"family": family, "host": host, "port": int(port), "user": user,
                "password": password, "gateway_id": "", "pin": "", "name": "smgw",
                "mode": args[6] if len(args) > 6 else "interval", "interval_s": 300,
                "daily_at": "00:15", "max_logins_per_hour": 120, "timeout_s": 30,
                "backoff_max_s": 3600}
    stats = {"frames_auth": 0, "frames_format": 0, "dropped_oversize": 0, "readings": 0,
             "throttled": 0, "last_error": None}
    gateway = Gateway(settings, data, Counted(), stats, on_reading=shown)
    asyncio.run(gateway.cycle())
    print("result", stats["gateway_error"] or "ok", stats["last_error"] or "")
    gc.collect()
    print("heap_free", gc.mem_free())


if __name__ == "__main__":
    main(sys.argv[1:])
