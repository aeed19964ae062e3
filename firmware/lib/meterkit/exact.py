"""Exact decimal numbers: an integer mantissa and a power-of-ten exponent.

ESP32 floats are 32-bit, so a meter value never passes through float: 123456.789 kWh stays
mantissa 123456789, exponent -3 from the frame to the JSON payload.
"""


class Exact:
    __slots__ = ("mantissa", "exponent")

    def __init__(self, mantissa, exponent=0):
        self.mantissa = mantissa
        self.exponent = exponent

    @staticmethod
    def parse(text):
        """'-0012.340' -> Exact(-12340, -3); keeps the meter's own precision."""
        dot = text.find(".")   # most meter values: '000123.456' (one new string, not four)
        if dot < 0:
            if text.isdigit():
                return Exact(int(text), 0)
        elif dot:
            digits = text.replace(".", "")
            if len(digits) == len(text) - 1 and len(digits) > dot and digits.isdigit():
                return Exact(int(digits), dot - len(digits))
        text = text.strip()
        sign = 1
        if text[:1] in ("-", "+"):
            sign = -1 if text[0] == "-" else 1
            text = text[1:]
        whole, dot, frac = text.partition(".")
        digits = whole + frac
        if not digits or not digits.isdigit() or (dot and not frac and not whole):
            raise ValueError("not a decimal number: '%s'" % text)
        return Exact(sign * int(digits), -len(frac))

    def scaled(self, power):
        """This value times 10**power, exactly (a DLMS scaler, or kW -> W)."""
        return Exact(self.mantissa, self.exponent + power)

    def __eq__(self, other):
        if isinstance(other, int):
            other = Exact(other)
        return isinstance(other, Exact) and _normal(self) == _normal(other)

    def __hash__(self):
        return hash(_normal(self))

    def __str__(self):
        # one formatting, one new string: slicing the digits made six (the device's heap)
        m, e = self.mantissa, self.exponent
        if e >= 0:
            return str(m * 10 ** e)
        sign = ""
        if m < 0:
            sign, m = "-", -m
        scale = 10 ** -e
        whole = m // scale
        return "%s%d.%0*d" % (sign, whole, -e, m - whole * scale)

    def __repr__(self):
        return "Exact(%s)" % self


def _normal(number):
    """(mantissa, exponent) with the mantissa's trailing zeros folded into the exponent."""
    m, e = number.mantissa, number.exponent
    while m and m % 10 == 0:
        m //= 10
        e += 1
    return (m, e) if m else (0, 0)
