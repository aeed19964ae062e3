"""The P1 framer's hot loop in @micropython.viper (imported by p1.py on MicroPython only)."""
import micropython


@micropython.viper
def _first_binary(text: ptr8, buf: ptr8, start: int, end: int) -> int:
    i = start
    while i < end:
        if text[buf[i]] == 0:
            return i
        i += 1
    return -1


def has_binary(text_table, buf, start, end):
    """True if buf[start:end] holds a byte the text table does not allow."""
    return _first_binary(text_table, buf, start, end) >= 0
