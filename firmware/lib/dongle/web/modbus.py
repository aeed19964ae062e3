"""The setup page's Modbus side: the models the core ships (GET /api/modbus/models) and "test"
(POST /api/test/modbus {"model", "slave", "line", "register"}): one register read from that meter
over the bus now, its value or what went wrong, named (timeout, crc, exception, format).

Loaded for those two requests and dropped with the other handlers. The bus sees one request at
a time: while profile modbus runs, the test waits for the reader's turn (ModbusReader.lock) and
uses its transaction; before that (setup, another profile) the reader only listens, so the test
writes the request itself and picks the answer out of the bytes the reader saw.
"""
import asyncio
import sys

from meterkit.errors import DecodeError
from meterkit.modbus import regmap, rtu

from .http import HttpError

MAPS = "meterkit.modbus.maps."


def models():
    """[{model, name, line, function, first}] for every built-in map; the maps this loaded for
    it are forgotten again (a running bus keeps its own)."""
    before = [name for name in sys.modules if name.startswith(MAPS)]
    out = []
    for model in regmap.MODELS:
        found = regmap.load(model)
        out.append({"model": model, "name": ("%s %s" % (found.maker, found.model)).strip(),
                    "line": found.line, "function": found.function,
                    "first": found.registers[0].name.split("/")[0]})
    for name in [name for name in sys.modules if name.startswith(MAPS) and name not in before]:
        sys.modules.pop(name)
        package = sys.modules.get(MAPS[:-1])
        leaf = name[len(MAPS):]
        if package is not None and hasattr(package, leaf):
            delattr(package, leaf)
    return out


class Ask:
    """One read request, shaped like poll.Request for ModbusReader.transact."""

    def __init__(self, slave, function, register, timeout_ms, line):
        self.function = function
        self.frame = rtu.read_request(slave, function, register.address, register.size)
        self.length = 5 + 2 * register.size
        self.timeout_ms = timeout_ms + rtu.transfer_ms(line, self.length + len(self.frame))


def _request(app, doc):
    """(map, register, slave, line) from the posted fields, checked as the config checks them."""
    from .. import config, profiles
    model, slave, line = doc.get("model"), doc.get("slave"), doc.get("line") or ""
    if isinstance(slave, str) and slave.isdigit():
        slave = int(slave)
    if type(slave) is not int or not 1 <= slave <= 247:
        raise HttpError(400, "slave must be 1..247")
    if not isinstance(model, str) or regmap.model_name(model) not in regmap.MODELS:
        raise HttpError(400, "model must be one of %s" % ", ".join(regmap.MODELS))
    try:
        line = config.serial_line(line)
    except ValueError as e:
        raise HttpError(400, "line %s" % e)
    found = regmap.load(model)
    name = doc.get("register") or found.registers[0].name.split("/")[0]
    register = found.register(name) if isinstance(name, str) else None
    if register is None:
        raise HttpError(400, "%s has no register %r" % (found.model, name))
    return found, register, slave, profiles.parse_line(line or found.line)


async def test(app, doc):
    """The JSON body of the answer: ok, kind, message, and on success register, value, unit."""
    from meterkit.reading import json_string, json_value
    from .. import profiles
    found, register, slave, line = _request(app, doc)
    ask = Ask(slave, found.function, register, app.cfg["meter"]["modbus_timeout_ms"], line)
    answer = await _exchange(app, ask, line)
    where = "slave %d at %s" % (slave, profiles.describe(line))
    name = register.name.split("/")[0]
    if isinstance(answer, str):   # the port could not send
        return ('{"ok": false, "kind": "port", "message": %s}' % json_string(answer)).encode()
    try:
        if not answer:
            raise rtu.Timeout("no answer from %s within %d ms" % (where, ask.timeout_ms))
        data = rtu.parse_response(answer, slave, found.function, register.size)
        value = regmap.value(register, data, 0, found.words, found.missing)
    except DecodeError as e:
        body = '{"ok": false, "kind": %s, "message": %s}' % (
            json_string(e.kind), json_string(_explain(e, found, where)))
        return body.encode()
    shown = "no value (NaN or not available)" if value is None else "%s %s" % (value, register.unit)
    body = '{"ok": true, "kind": "ok", "message": %s, "register": %s, "value": %s, "unit": %s}' % (
        json_string("%s %s: %s = %s" % (found.model, where, name, shown.strip())),
        json_string(name), json_value(value), json_string(register.unit))
    return body.encode()


def _explain(error, found, where):
    if error.kind == "timeout":
        return "%s: check the slave id, the line settings and the A/B wires" % error.message
    if error.kind == "crc":
        return "%s: the line settings (baud, parity) differ from the meter's, or the bus is " \
               "noisy" % error.message
    if error.kind == "exception":
        return "%s: is the meter a %s?" % (error.message, found.model)
    return "%s (%s)" % (error.message, where)


async def _exchange(app, ask, line):
    """The answer's bytes (b"" for none), or a str saying why the request could not go out."""
    reader, port, usual = app.reader, app.port, app.auto.line
    lock = getattr(reader, "lock", None)
    if lock is not None:                  # profile modbus: wait for the bus, use its transaction
        async with lock:
            if line != usual:
                port.set_line(line)
            try:
                return await reader.transact(ask)
            finally:
                if line != usual:
                    port.set_line(usual)
                await asyncio.sleep_ms(-(-rtu.silence_us(line) // 1000))
    if line != usual:
        port.set_line(line)
    try:
        return await _listen(app, ask, line)
    finally:
        if line != usual:
            port.set_line(usual)


async def _listen(app, ask, line):
    """Write the request and watch what the (listening) reader receives until the answer is in."""
    from time import ticks_add, ticks_diff, ticks_ms
    stats = app.stats
    before = stats["meter_bytes"]
    try:
        await app.port.write(ask.frame)
    except (OSError, ValueError) as e:
        return "the meter port cannot send: %s" % e
    deadline = ticks_add(ticks_ms(), ask.timeout_ms)
    seen = b""
    while ticks_diff(deadline, ticks_ms()) > 0:
        await asyncio.sleep_ms(2)
        got = stats["meter_bytes"] - before
        seen = app.reader.last_bytes()[-got:] if got else b""
        want = rtu.response_length(seen, ask.function)
        if want > 0 and len(seen) >= want:
            break
        if want < 0:              # garbled: take what comes until the line is quiet
            await asyncio.sleep_ms(-(-rtu.silence_us(line) // 1000) + 2)
            got = stats["meter_bytes"] - before
            return app.reader.last_bytes()[-got:]
    return seen
