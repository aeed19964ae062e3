"""`meterkit simulate-modbus`: Modbus RTU slaves (simulated SDM630, SDM120, …) on one bus, built on
the core's register maps and RTU codec, served on a pseudo-terminal (for `meterkit read`) or TCP
(the firmware on the unix port, whose meter "UART" is a TCP socket).

    meterkit simulate-modbus --meter sdm630:1 --meter sdm120:2 --pty
    meterkit simulate-modbus --meter sdm630:1 --tcp 5020 --set 1:voltage_l1=230.1

Every register holds a known value (KNOWN below, or --set), stored as the meter stores it
(float32 or a scaled integer); `Slave.expected()` is what a reader must publish for it: the
shortest decimal of that float32. A slave can be switched off (`on = False`: it stays silent)
and made to misbehave once (`fault`: "crc", "exception", "short", "garble").
"""
import os
import socket
import struct
import threading
import time

from meterkit.errors import DecodeError
from meterkit.exact import Exact
from meterkit.modbus import float32, regmap, rtu

# known values by name (a split register takes its first name; negative: the second)
KNOWN = (("voltage_l1", "230.1"), ("voltage_l2", "229.8"), ("voltage_l3", "231.4"),
         ("current_l1", "5.25"), ("current_l2", "1.5"), ("current_l3", "0.125"),
         ("power_in_l1", "1200.5"), ("power_in_l2", "-340.25"), ("power_in_l3", "12.1"),
         ("apparent_power_l1", "1210.3"), ("apparent_power_l2", "350"), ("apparent_power_l3", "15"),
         ("reactive_power_in_l1", "120.7"), ("reactive_power_in_l2", "-20.5"),
         ("reactive_power_in_l3", "3.3"), ("power_factor_l1", "0.992"), ("power_factor_l2", "-0.97"),
         ("power_factor_l3", "0.81"), ("phase_angle_l1", "7.1"), ("phase_angle_l2", "-14.2"),
         ("phase_angle_l3", "35.9"), ("current_sum", "6.875"), ("power_in", "872.35"),
         ("apparent_power", "1575.3"), ("reactive_power_in", "103.5"), ("power_factor", "0.95"),
         ("frequency", "49.98"), ("energy_in", "12345.67"), ("energy_out", "234.5"),
         ("reactive_energy_in", "456.75"), ("reactive_energy_out", "12.5"), ("current_n", "0.4"),
         ("thd_voltage_l1", "2.1"), ("thd_voltage_l2", "1.9"), ("thd_voltage_l3", "2.4"),
         ("thd_current_l1", "12.5"), ("thd_current_l2", "8.75"), ("thd_current_l3", "20.1"),
         ("energy_total", "12580.17"), ("energy_in_l1", "4115.2"), ("energy_in_l2", "4115.3"),
         ("energy_in_l3", "4115.17"), ("energy_out_l1", "78.1"), ("energy_out_l2", "78.2"),
         ("energy_out_l3", "78.2"))
FAULTS = ("crc", "exception", "short", "garble")


class Slave:
    def __init__(self, map, slave, values=()):
        self.map, self.slave = map, slave
        self.on = True
        self.fault = None          # misbehave once: one of FAULTS
        self.requests = 0
        self.registers = {}        # address -> 2 bytes
        self.texts = {}            # first name -> the decimal text it was set from
        given = dict(KNOWN)
        given.update(values)
        for reg in map.registers:
            name = reg.name.split("/")[0]
            self.set(name, given.get(name, "0"), strict=name in dict(values))

    def set(self, name, text, strict=True):
        """Store text as the register stores it; an integer register with fewer decimals than
        text takes it cut to its resolution unless strict (then: ValueError)."""
        reg = self.map.register(name)
        if reg is None:
            raise ValueError("%s has no register %r" % (self.map.model, name))
        if reg.type == "f32":
            raw = struct.pack(">f", float(text))
        else:
            exact = Exact.parse(text)
            shift = exact.exponent - reg.scale
            if strict and shift < 0 and exact.mantissa % 10 ** -shift:
                raise ValueError("%s: %s has more decimals than the register holds" % (name, text))
            n = exact.mantissa * 10 ** shift if shift >= 0 else int(exact.mantissa / 10 ** -shift)
            raw = n.to_bytes(2 * reg.size, "big", signed=reg.type[0] == "s")
        if self.map.words == "little":
            raw = b"".join(raw[i:i + 2] for i in range(len(raw) - 2, -2, -2))
        for i in range(reg.size):
            self.registers[reg.address + i] = raw[2 * i:2 * i + 2]
        self.texts[reg.name.split("/")[0]] = text

    def expected(self):
        """{obis: text} a reader must publish: the shortest decimal of what the registers hold."""
        out = {}
        for reg in self.map.registers:
            data = b"".join(self.registers[reg.address + i] for i in range(reg.size))
            value = regmap.value(reg, data, 0, self.map.words, self.map.missing)
            codes = reg.obis.split("/")
            if len(codes) == 1:
                out[codes[0]] = str(value)
            elif value.mantissa >= 0:
                out[codes[0]], out[codes[1]] = str(value), "0"
            else:
                out[codes[0]], out[codes[1]] = "0", str(Exact(-value.mantissa, value.exponent))
        return out

    def handle(self, slave, function, address, count):
        """The answer to a read request addressed to this slave (None: silent)."""
        if not self.on:
            return None
        self.requests += 1
        fault, self.fault = self.fault, None
        if fault == "exception" or function != self.map.function:
            return rtu.exception_response(slave, function, 1 if function != self.map.function else 2)
        if any(address + i not in self.registers for i in range(count)):
            return rtu.exception_response(slave, function, 2)    # illegal data address
        answer = rtu.read_response(slave, function, b"".join(
            self.registers[address + i] for i in range(count)))
        if fault == "crc":
            answer = answer[:-1] + bytes([answer[-1] ^ 0xFF])
        elif fault == "short":
            answer = answer[:len(answer) // 2]
        elif fault == "garble":
            answer = bytes([answer[0], 0x55]) + answer[2:]
        return answer


class BusSim:
    """Slaves on one wire: requests in (any chunking), answers out; noise is skipped."""

    def __init__(self, slaves):
        self.slaves = dict((s.slave, s) for s in slaves)
        self.buf = bytearray()
        self.bad_requests = 0

    def feed(self, data):
        self.buf.extend(data)
        answers = []
        while len(self.buf) >= 8:
            try:
                slave, function, address, count = rtu.parse_request(bytes(self.buf[:8]))
            except DecodeError:
                self.bad_requests += 1
                self.buf = self.buf[1:]       # resynchronise on the next byte
                continue
            self.buf = self.buf[8:]
            target = self.slaves.get(slave)
            answer = target.handle(slave, function, address, count) if target else None
            if answer:
                answers.append(answer)
        return answers


def parse_meter(text):
    """'sdm630:1' -> (model, slave)."""
    model, _, slave = text.partition(":")
    return regmap.model_name(model), int(slave or 1)


class PtyBus:
    """The bus on a pseudo-terminal pair: a reader opens .path like a serial port."""

    def __init__(self, bus, log=None):
        import tty
        self.bus = bus
        self.master, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        self.path = os.ttyname(self.slave_fd)
        self.closed = False
        if log:
            log(self.path)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import select
        while not self.closed:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(self.master, 1024)
            except OSError:
                return
            for answer in self.bus.feed(data):
                time.sleep(0.002)             # the meter's turnaround
                os.write(self.master, answer)

    def close(self):
        self.closed = True
        time.sleep(0.3)
        os.close(self.master)
        os.close(self.slave_fd)


class TcpBus:
    """The bus on 127.0.0.1:port, one client at a time (the unix port's meter UART)."""

    def __init__(self, bus, port=0, log=None):
        self.bus = bus
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))
        self.server.listen(1)
        self.port = self.server.getsockname()[1]
        self.client = None
        self.clients = 0
        if log:
            log("listening on 127.0.0.1:%d" % self.port)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.client = client
            self.clients += 1
            with client:
                while True:
                    try:
                        data = client.recv(1024)
                    except OSError:
                        break
                    if not data:
                        break
                    for answer in self.bus.feed(data):
                        try:
                            client.sendall(answer)
                        except OSError:
                            break
            self.client = None

    def hang_up(self):
        """End the client's connection (the firmware's finite run ends there)."""
        client = self.client
        if client is not None:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.hang_up()
        self.server.close()


def add_command(commands):
    sim = commands.add_parser("simulate-modbus", help="simulated Modbus RTU meters (SDM630, SDM120, …)",
                              description=__doc__.split("\n\n")[0])
    sim.add_argument("--meter", action="append", required=True, metavar="MODEL:SLAVE",
                     help="a slave on the bus: %s, e.g. sdm630:1 (repeat for more)" % ", ".join(regmap.MODELS))
    where = sim.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", action="store_true", help="serve a pseudo-terminal (prints its path)")
    where.add_argument("--tcp", type=int, metavar="PORT", help="serve TCP on 127.0.0.1:PORT")
    sim.add_argument("--set", action="append", default=[], metavar="SLAVE:NAME=VALUE",
                     help="a register's value, e.g. 1:voltage_l1=230.1")
    sim.set_defaults(run=run)


def run(args):
    import sys
    from .arguments import usage_error
    try:
        slaves = {}
        for text in args.meter:
            model, slave = parse_meter(text)
            slaves[slave] = Slave(regmap.load(model), slave)
        for text in args.set:
            where, _, assignment = text.partition(":")
            name, _, value = assignment.partition("=")
            slaves[int(where)].set(name, value)
    except (ValueError, KeyError) as e:
        return usage_error("simulate-modbus: %s" % e)
    bus = BusSim(list(slaves.values()))
    log = lambda text: (sys.stderr.write(text + "\n"), sys.stderr.flush())   # noqa: E731
    served = PtyBus(bus, log) if args.pty else TcpBus(bus, args.tcp, log)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        served.close()
    return 0
