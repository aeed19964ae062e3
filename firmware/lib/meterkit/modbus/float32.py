"""IEEE 754 float32 bit patterns -> the shortest decimal that reads back as the same float32.

    shortest(0x4366199A) -> (False, 2301, -1)     # 230.1, never 230.10000610351562
    exact(0x4366199A)    -> Exact(2301, -1)
    text(0x7FC00000)     -> "nan"

Computed with integers only (no `float`): MicroPython on the ESP32 has 32-bit floats and CPython
64-bit ones, so a float path would print different digits on the two runtimes; this one prints
the same everywhere. The rule is the one Python's repr and numpy.float32's repr follow: the
fewest significant digits that round back to the same float32 (round half to even when parsed),
and of those the one nearest the exact binary value.

A float32 is m * 2**e exactly. Every real strictly between the midpoints to its neighbours (and
on a midpoint when m is even: ties go to even) parses back to it. Scaled by 4 those midpoints are
the integers 4m-2 (4m-1 below a power of two, where the gap below is half) and 4m+2, times
2**(e-2). The shortest decimal is d * 10**q for the largest q that has a whole d in that range.
"""
from ..exact import Exact

NAN, INF, NEG_INF = "nan", "inf", "-inf"


def shortest(bits):
    """(negative, digits, exponent) with value (-1 if negative) * digits * 10**exponent, or
    NAN / INF / NEG_INF. Zero is (negative, 0, 0)."""
    negative = bool(bits >> 31 & 1)
    biased = bits >> 23 & 0xFF
    fraction = bits & 0x7FFFFF
    if biased == 0xFF:
        return NAN if fraction else (NEG_INF if negative else INF)
    if biased == 0:
        if not fraction:
            return negative, 0, 0
        m, e = fraction, -149          # subnormal: no hidden bit
    else:
        m, e = fraction | 0x800000, biased - 150
    inclusive = not m & 1
    value, high = 4 * m, 4 * m + 2
    low = 4 * m - (1 if fraction == 0 and biased > 1 else 2)
    k = e - 2                          # the three are integers times 2**k
    # 10**q is above every value in range (high < 2**26): only d = 0 fits there, and 0 is not in
    # range; step q down until a multiple of 10**q is
    q = ((26 + k) * 30103) // 100000 + 2
    while True:
        num, den = 1, 1
        if k >= 0:
            num <<= k
        else:
            den <<= -k
        if q >= 0:
            den *= 10 ** q
        else:
            num *= 10 ** -q
        lo, hi = low * num, high * num
        if inclusive:
            d_lo, d_hi = -(-lo // den), hi // den
        else:
            d_lo, d_hi = lo // den + 1, -(-hi // den) - 1
        if d_lo <= d_hi:
            break
        q -= 1
    d, rest = divmod(value * num, den)   # the nearest in range to the exact value, ties to even
    if 2 * rest > den or (2 * rest == den and d & 1):
        d += 1
    d = d_lo if d < d_lo else (d_hi if d > d_hi else d)
    return negative, d, q


def exact(bits):
    """The shortest decimal as an Exact, or None for NaN and the infinities (no JSON number)."""
    found = shortest(bits)
    if isinstance(found, str):
        return None
    negative, digits, exponent = found
    return Exact(-digits if negative else digits, exponent)


def text(bits):
    """Shortest digits as text, positional as Exact prints them ('230.1', '-0.5', '1e-45' as
    '0.00…01'); 'nan', 'inf', '-inf' for the specials."""
    found = shortest(bits)
    if isinstance(found, str):
        return found
    negative, digits, exponent = found
    return ("-" if negative and digits else "") + str(Exact(digits, exponent))
