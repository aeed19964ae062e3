"""`meterkit smgw`: read a German Smart Meter Gateway's HAN consumer interface (IF_GW_CON).

    meterkit smgw --config /etc/meterkit/read.toml          # its [[gateways]], and the sinks
    meterkit smgw --url https://192.168.1.200 --user 1234 --password-file pw [--family ppc]
                  [--mqtt mqtt://broker] [--record sqlite:///r.db] [--stdout] [--once]
    meterkit smgw --config … --accept-new-cert               # after a certificate change

The same [[gateways]] entries make gateways sources of `meterkit read` beside its serial meters.
The families (what to ask, how to read the answers) are the core's, which the dongle runs too
(meterkit.smgw: ppc, theben, emh); this package is the host's transport and polling around them:

    session.py  HTTPS: pinned certificate, digest auth, client certificates, bounded answers
    guard.py    one session per gateway address, the login budget, the pin, on disk
    source.py   the polling thread: schedule, backoff, readings to the sinks
    config.py   the [[gateways]] fields (dongle.smgw_discovery: the gateway's HA device)
"""
import logging
import os
import sys
import threading

from ..arguments import usage_error

log = logging.getLogger("meterkit.smgw")


def add_command(commands):
    smgw = commands.add_parser(
        "smgw", help="read a German Smart Meter Gateway (HAN interface) into MQTT/stdout/recorder",
        description="Poll a Smart Meter Gateway's HAN consumer interface (PPC, Theben CONEXA, "
        "EMH CASA) over HTTPS and send every meter's readings to MQTT (the dongle's topics), "
        "stdout and/or the recorder. Either --config FILE (its [[gateways]]) or --url and --user.")
    smgw.add_argument("--config", metavar="FILE", help="a .json or .toml config with [[gateways]]")
    smgw.add_argument("--url", help="the gateway, e.g. https://192.168.1.200")
    smgw.add_argument("--user", help="the HAN user name from the metering point operator")
    smgw.add_argument("--password-file", metavar="FILE",
                      help="file holding the password (default: $METERKIT_SMGW_PASSWORD)")
    smgw.add_argument("--family", default="auto", help="ppc, theben, emh or auto (default)")
    smgw.add_argument("--mode", default="interval", help="interval (default) or daily")
    smgw.add_argument("--interval", type=int, default=300, metavar="S",
                      help="seconds between polls (default 300: more often risks a lockout)")
    smgw.add_argument("--mqtt", metavar="URL", help="broker: mqtt://[user:pass@]host[:port]")
    smgw.add_argument("--base", default="smartmeter", help="MQTT base topic (default smartmeter)")
    smgw.add_argument("--record", metavar="URL", help="sqlite:///path.db or postgresql://...")
    smgw.add_argument("--stdout", action="store_true", help="print one JSON line per reading")
    smgw.add_argument("--once", action="store_true", help="one cycle, then exit (1 if it failed)")
    smgw.add_argument("--accept-new-cert", action="store_true",
                      help="forget the pinned certificate(s); the next connection pins anew")
    smgw.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    smgw.set_defaults(run=run)


def run(args):
    from .. import hostconfig
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("paho", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.config:
            if args.url or args.user:
                return usage_error("smgw: --config and --url/--user: give one or the other")
            config = hostconfig.load(args.config)
            config["sources"] = []   # this command runs the gateways only
            if not config["gateways"]:
                return usage_error("smgw: %s has no [[gateways]]" % args.config)
        elif args.url and args.user:
            config = hostconfig.validate(_document(args))
        else:
            return usage_error("smgw: give --config FILE, or --url and --user")
    except hostconfig.ConfigError as e:
        return usage_error("bad config (%s):\n  %s" % (args.config or "command line",
                                                        "\n  ".join(e.problems)))
    if args.accept_new_cert:
        return accept_new_cert(config["gateways"])
    from ..sinks import SinkError
    try:
        if args.once:
            return once(config)
        from ..read import serve
        return serve(config)
    except SinkError as e:
        return usage_error(str(e))


def _document(args):
    gateway = {"url": args.url, "user": args.user, "family": args.family, "mode": args.mode,
               "interval_s": args.interval}
    if args.password_file:
        gateway["password_file"] = args.password_file
    else:
        gateway["password"] = os.environ.get("METERKIT_SMGW_PASSWORD", "")
    doc = {"gateways": [gateway], "stdout": bool(args.stdout or not (args.mqtt or args.record))}
    if args.mqtt:
        doc["mqtt"] = {"url": args.mqtt, "base_topic": args.base}
    if args.record:
        doc["recorder"] = {"url": args.record}
    return doc


def accept_new_cert(gateways):
    from .guard import HostLock
    from .source import GatewaySource
    for spec in gateways:
        where = GatewaySource(spec, None, threading.Event()).where
        with HostLock(spec["state_dir"], where, 8 * spec["timeout_s"]) as state:
            old = state.forget_pin()
        print("%s (%s): %s; the next connection pins the certificate it is shown" % (
            spec["name"], where, "forgot the pin SHA-256 %s" % old if old else "nothing pinned"))
    return 0


def once(config, stdout=None):
    """One cycle of every gateway into the sinks; 0 when all succeeded, else 1."""
    from ..read import SHUTDOWN_S, build_sinks
    from ..sinks import Fanout
    from .source import GatewaySource
    fanout = Fanout(build_sinks(config, stdout))
    fanout.start()
    failed = 0
    for spec in config["gateways"]:
        source = GatewaySource(spec, fanout, threading.Event())
        source.cycle()
        failed += source.stats["polls_ok"] == 0
    fanout.stop(max(SHUTDOWN_S, 60))   # a daily cycle hands over a whole day per meter
    return 1 if failed else 0
