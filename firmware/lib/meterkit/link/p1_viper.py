"""The P1 framer's hot loop in @micropython.viper (imported by p1.py on MicroPython only)."""
import micropython


@micropython.viper
def has_binary(text: ptr8, buf: ptr8, start: int, end: int) -> bool:
    """True if buf[start:end] holds a byte the text table does not allow."""
    i = start
    while i < end:
        if text[buf[i]] == 0:
            return True
        i += 1
    return False
