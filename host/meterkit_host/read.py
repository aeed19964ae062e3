"""`meterkit read`: read meters on serial ports and send their readings to MQTT, stdout, a recorder.

    meterkit read --config /etc/meterkit/read.toml
    meterkit read --port /dev/ttyUSB0 --profile dsmr5 [--key HEX] [--auth-key HEX]
                  [--mqtt mqtt://user:pass@host:1883] [--base smartmeter] [--stdout] [--record URL]

A thread per meter (sources.SerialSource), a thread and a queue per sink (sinks.py). It runs until
Ctrl-C or SIGTERM, then publishes what it can, says offline, and keeps the rest in the spool.
"""
import logging
import signal
import sys
import threading

from .arguments import aes_key, usage_error

log = logging.getLogger("meterkit.read")
SHUTDOWN_S = 5   # how long the sinks may take to write what is queued when we stop


def add_command(commands):
    read = commands.add_parser("read", help="read meters on serial ports, send to MQTT/stdout/recorder",
                               description="Read one or more meters over serial and send every "
                               "reading to MQTT (the dongle's topics), stdout (JSON lines) and/or "
                               "the recorder. Either --config FILE or --port and --profile.")
    read.add_argument("--config", metavar="FILE", help="a .json or .toml config (meters and sinks)")
    read.add_argument("--port", help="serial port of the meter, e.g. /dev/ttyUSB0")
    read.add_argument("--profile", help="meter profile: dsmr5, dsmr22, smarty, e450, hdlc_dlms, "
                      "mbus_dlms, evn, auto, ...")
    read.add_argument("--line", help="override the profile's serial line, e.g. '2400 8N1'")
    read.add_argument("--slave", type=int, help="Modbus profiles (sdm630, sdm120, …): the slave id (default 1)")
    read.add_argument("--key", type=aes_key, help="encryption key (GUEK), 32 hex digits")
    read.add_argument("--auth-key", type=aes_key, help="authentication key (GAK), 32 hex digits")
    read.add_argument("--mqtt", metavar="URL", help="broker: mqtt://[user:pass@]host[:port] or mqtts://")
    read.add_argument("--base", default="smartmeter", help="MQTT base topic (default smartmeter)")
    read.add_argument("--spool", metavar="DIR", help="where readings wait while the broker is away")
    read.add_argument("--stdout", action="store_true", help="print one JSON line per reading")
    read.add_argument("--record", metavar="URL", help="store readings: sqlite:///path.db or postgresql://...")
    read.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    read.set_defaults(run=run)


def run(args):
    from . import hostconfig
    from .sinks import SinkError
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("paho").setLevel(logging.WARNING)
    simple = [flag for flag in ("port", "profile", "line", "key", "auth_key", "mqtt", "spool", "stdout",
                                "record", "slave") if getattr(args, flag, None)]
    try:
        if args.config:
            if simple:
                return usage_error("--config and --%s: give one or the other" % simple[0].replace("_", "-"))
            config = hostconfig.load(args.config)
        elif args.port and args.profile:
            config = hostconfig.from_args(args)
        else:
            return usage_error("read: give --config FILE, or --port and --profile")
    except hostconfig.ConfigError as e:
        where = args.config or "command line"
        return usage_error("bad config (%s):\n  %s" % (where, "\n  ".join(e.problems)))
    try:
        return serve(config)
    except SinkError as e:
        return usage_error(str(e))


def build_sinks(config, stdout=None):
    from .mqtt_sink import MqttSink
    from .sinks import RecorderSink, StdoutSink
    sinks = []
    if config["mqtt"]:
        sinks.append(MqttSink(config["mqtt"]))
    if config["recorder"]:
        sinks.append(RecorderSink(config["recorder"]["url"]))
    if config["telegram"]:
        from .telegram_sink import TelegramSink
        sinks.append(TelegramSink(config["telegram"]))
    if config["stdout"]:
        sinks.append(StdoutSink(stdout))
    return sinks


def serve(config, stop=None, stdout=None):
    """Run until `stop` (a threading.Event) is set, or SIGTERM/SIGINT when in the main thread."""
    from .sinks import Fanout
    from .modbus_source import ModbusSource, is_modbus
    from .sources import SerialSource
    stop = stop or threading.Event()
    fanout = Fanout(build_sinks(config, stdout))
    every = config["mqtt"]["diagnostics_interval"] if config["mqtt"] else 60
    meters = [(ModbusSource if is_modbus(spec["profile"]) else SerialSource)(spec, fanout, stop, every)
              for spec in config["sources"]]
    if config.get("gateways"):   # Smart Meter Gateways polled over HTTPS (smgw/)
        from .smgw.source import GatewaySource
        meters += [GatewaySource(spec, fanout, stop, every) for spec in config["gateways"]]
    restore = _on_signals(stop)
    fanout.start()
    for meter in meters:
        meter.start()
    log.info("reading %d meter(s) into %s", len(meters),
             ", ".join(sink.name for sink in fanout.sinks))
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        stop.set()
    finally:
        restore()
    log.info("stopping")
    for meter in meters:
        meter.thread.join(getattr(meter, "stop_wait_s", 2))   # a gateway logs out first
    fanout.stop(SHUTDOWN_S)
    for meter in meters:
        counts = meter.diagnostics()
        log.info("%s: %d readings, %d frames rejected, %d bytes skipped", meter.name,
                 counts["readings"], sum(counts["frames_" + k] for k in ("crc", "auth", "replay", "format")),
                 counts["skipped_bytes"])
    return 0


def _on_signals(stop):
    """SIGTERM (systemd stop) and SIGINT (Ctrl-C) set `stop`; returns a function undoing that."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    handler = lambda signum, frame: stop.set()   # noqa: E731
    previous = [(sig, signal.signal(sig, handler)) for sig in (signal.SIGTERM, signal.SIGINT)]

    def restore():
        for sig, old in previous:
            signal.signal(sig, old)
    return restore
