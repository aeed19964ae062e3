"""Modbus RTU frames: what a master sends and checks, and (for the simulator and tests) what a
slave parses and answers. One codec for the dongle, the host and the simulator.

    request = read_request(slave=1, function=4, address=0x0000, count=6)   # 8 bytes with CRC
    n = response_length(buf, 4)     # bytes the answer has once its head is in; 0 more; -1 garbled
    data = parse_response(frame, 1, 4, 6)   # the 12 register bytes, or a ModbusError named:
        CrcError ("crc"), ExceptionResponse ("exception": code and its name from the
        Modbus Application Protocol V1.1b, section 7), FormatError ("format": wrong slave,
        function, byte count, short or long frame), Timeout ("timeout", raised by drivers)

A frame is slave id, function, data, CRC-16/MODBUS (low byte first). Frames are delimited by
silence: at least 3.5 character times between them (Modbus over Serial Line V1.02, 2.5.1.1),
fixed at 1.75 ms above 19200 baud. A character is 1 start bit, 7 or 8 data bits, the parity bit
if any, 1 or 2 stop bits: 11 bits at 8E1 and 8N2, 10 at 8N1.
"""
from ..crc import crc16_modbus
from ..errors import CrcError, DecodeError, FormatError

READ_HOLDING, READ_INPUT = 3, 4
MAX_READ = 125                  # registers per read (Modbus Application Protocol V1.1b, 6.3/6.4)
KINDS = ("crc", "exception", "format", "timeout")

_EXCEPTIONS = ("|1=illegal function|2=illegal data address|3=illegal data value"
               "|4=server device failure|5=acknowledge|6=server device busy"
               "|8=memory parity error|10=gateway path unavailable"
               "|11=gateway target device failed to respond|")


class ExceptionResponse(DecodeError):
    """The slave understood the request and refused it."""
    kind = "exception"

    def __init__(self, slave, function, code):
        self.slave, self.function, self.code = slave, function, code
        # super(): MicroPython has no DecodeError.__init__ to call by name
        super().__init__("slave %d: exception %d (%s) to function %d"
                         % (slave, code, exception_name(code), function))


class Timeout(DecodeError):
    kind = "timeout"


def exception_name(code):
    at = _EXCEPTIONS.find("|%d=" % code)
    if at < 0:
        return "unknown exception"
    at = _EXCEPTIONS.index("=", at) + 1
    return _EXCEPTIONS[at:_EXCEPTIONS.index("|", at)]


def _with_crc(body):
    crc = crc16_modbus(body)
    body.append(crc & 0xFF)
    body.append(crc >> 8)
    return bytes(body)


def read_request(slave, function, address, count):
    """Read holding (3) or input (4) registers: the 8-byte frame."""
    if not 1 <= slave <= 247:
        raise ValueError("slave id must be 1..247")
    if function not in (READ_HOLDING, READ_INPUT):
        raise ValueError("function must be 3 (holding) or 4 (input registers)")
    if not 1 <= count <= MAX_READ or not 0 <= address or address + count > 0x10000:
        raise ValueError("registers must be 1..125 within 0..65535")
    return _with_crc(bytearray((slave, function, address >> 8, address & 0xFF,
                                count >> 8, count & 0xFF)))


def response_length(buf, function):
    """The length of the answer whose first bytes are in buf: n > 0, 0 when too few bytes are in
    to tell, -1 when its function byte is neither the one asked nor its exception."""
    if len(buf) < 2:
        return 0
    if buf[1] == function | 0x80:
        return 5
    if buf[1] != function:
        return -1
    if len(buf) < 3:
        return 0
    return 5 + buf[2]


def parse_response(frame, slave, function, count):
    """The register bytes (2 * count) of a read answer; ModbusError subclasses name what is wrong."""
    n = len(frame)
    if n < 5:
        raise FormatError("short frame: %d bytes from slave %d" % (n, slave))
    crc = crc16_modbus(frame, 0, n - 2)
    if frame[n - 2] != crc & 0xFF or frame[n - 1] != crc >> 8:
        raise CrcError("CRC error in a %d-byte answer from slave %d" % (n, slave))
    if frame[0] != slave:
        raise FormatError("answer from slave %d, asked slave %d" % (frame[0], slave))
    if frame[1] == function | 0x80:
        raise ExceptionResponse(slave, function, frame[2])
    if frame[1] != function:
        raise FormatError("slave %d answered function %d to function %d" % (slave, frame[1], function))
    if frame[2] != 2 * count:
        raise FormatError("slave %d sent %d register bytes, asked %d" % (slave, frame[2], 2 * count))
    if n != 5 + 2 * count:
        raise FormatError("slave %d: %s frame (%d bytes, expected %d)"
                          % (slave, "short" if n < 5 + 2 * count else "long", n, 5 + 2 * count))
    return frame[3:n - 2]


# -- the slave's side (simulator, tests) -----------------------------------------------------------

def parse_request(frame):
    """(slave, function, address, count) of a read request; CrcError / FormatError otherwise."""
    if len(frame) != 8:
        raise FormatError("a read request has 8 bytes, not %d" % len(frame))
    crc = crc16_modbus(frame, 0, 6)
    if frame[6] != crc & 0xFF or frame[7] != crc >> 8:
        raise CrcError("CRC error in a request")
    return frame[0], frame[1], frame[2] << 8 | frame[3], frame[4] << 8 | frame[5]


def read_response(slave, function, data):
    body = bytearray((slave, function, len(data)))
    body.extend(data)
    return _with_crc(body)


def exception_response(slave, function, code):
    return _with_crc(bytearray((slave, function | 0x80, code)))


# -- timing ----------------------------------------------------------------------------------------

def char_bits(line):
    """Bits per character of a line tuple (baud, bits, parity, stop, inverted)."""
    baud, bits, parity, stop = line[0], line[1], line[2], line[3]
    return 1 + bits + (0 if parity is None else 1) + stop


def silence_us(line):
    """The 3.5-character silence that ends a frame (1750 us above 19200 baud)."""
    if line[0] > 19200:
        return 1750
    return (35 * char_bits(line) * 1000000) // (10 * line[0])


def transfer_ms(line, nbytes):
    """How long nbytes take on the wire, rounded up."""
    return -(-nbytes * char_bits(line) * 1000 // line[0])
