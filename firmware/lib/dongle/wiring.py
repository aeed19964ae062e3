"""App construction: read the config, pick the board, build reader, spool and publisher.

Runs once per start (App.__init__ calls it through dongle.lazy) and is forgotten afterwards: on
the stock firmware a module's code stays in the heap while it is loaded, and this is a lot of it.
"""
from binascii import unhexlify

from . import profiles, unload
from .autoline import AutoLine
from .hw import SPOOL_FILE_BYTES, SPOOL_RAM_ITEMS, load as load_hw
from .publisher import Publisher
from .reader import Reader, Throttle
from .spool import Spool


def _key(text):
    return unhexlify(text) if text else None


def build(app, argv, say):
    app.hw = hw = load_hw()
    app.finite = "--exit-at-end" in argv
    app.verbose = "--verbose" in argv
    app.data = hw.data_dir(argv)
    from . import config
    problems = []
    app.cfg = cfg = config.load(app.data + "/config.json", problems)
    for problem in problems:
        say("config:", problem)
    del config
    unload("config", "web.auth")   # ~18 KB of heap on the unix port; loaded again when needed
    app.board = _board(hw, app.data, cfg["board"]["name"], app.stats, say)
    meter = cfg["meter"]
    modbus = meter["profile"] == "modbus"
    smgw = meter["profile"] == "smgw"
    publish = cfg["publish"]
    throttle = Throttle(publish["min_interval"], publish["on_change"])
    app.spool = Spool(app.data + "/spool", SPOOL_RAM_ITEMS, SPOOL_FILE_BYTES)
    app.auto = None
    if smgw:     # meters behind a Smart Meter Gateway, polled over HTTPS
        from .smgw import Gateway
        app.reader = app.port = Gateway(cfg["smgw"], app.data, app.spool, app.stats,
                                        app.finite, app._on_reading)
    elif modbus:   # meters we ask in turn on RS485, at the line the config or the map says
        from .modbus_reader import ModbusReader
        app.reader = ModbusReader(None, meter, app.spool, app.stats, throttle, app.finite,
                                  app._on_reading)
        app.auto = AutoLine([app.reader.line])
        app.port = app.reader.port = hw.MeterPort(app.board, app.auto.line, meter["source"])
    else:
        app.auto = AutoLine(profiles.lines(meter["profile"]),
                                     first=profiles.first_line(app.board["default_profile"]))
        app.port = hw.MeterPort(app.board, app.auto.line, meter["source"])
        app.reader = Reader(app.port, app.auto, app.spool, app.stats, _key(meter["key"]),
                            _key(meter["auth_key"]), profiles.framings(meter["profile"]),
                            throttle, app.finite, app._on_reading)
    app.node = hw.unique_id()
    app.publisher = None
    if cfg["mqtt"]["host"]:
        settings = dict(cfg["mqtt"])
        settings.update(publish)
        shared = modbus or smgw
        device = None if shared else _remembered_device(app.data)
        app.publisher = Publisher(settings, app.spool, app.stats, app.node, app.reader.wake,
                                  device, _ssl(cfg["mqtt"]), app._remember_device,
                                  app.stats["version"])
        if shared:   # many meters, one connection: the will and diagnostics are the dongle's
            app.publisher.shared = True
            app.reader.attach(app.publisher, settings["base_topic"])
    app.wifi = hw.Wifi(cfg["wifi"]["ssid"], cfg["wifi"]["password"])
    unload("profiles")   # its tables: the running dongle keeps only the AutoLine


def _board(hw, data, name, stats, say):
    from . import board
    try:
        return board.load(name, hw.board_roots(data))
    except ValueError as e:
        say("board:", e, "- using the generic board")
        stats["last_error"] = str(e)
        return board.load("generic", [])
    finally:
        unload("board")


def _ssl(mqtt):
    if not mqtt["tls"]:
        return None
    from .mqtt_connect import tls_context
    return tls_context(mqtt["ca_cert"] or None)


def _remembered_device(data):
    try:
        with open(data + "/meter_id") as f:
            return f.read().strip() or None
    except OSError:
        return None
