"""The core's error types. Every rejected frame surfaces as one of these, never anything else.

`kind` is what the decode contract reports: crc | auth | replay | format.
"""


class DecodeError(Exception):
    kind = "format"

    @property
    def message(self):
        return self.args[0] if self.args else self.kind


class FormatError(DecodeError):
    pass   # kind "format", as DecodeError


class CrcError(DecodeError):
    kind = "crc"


class AuthError(DecodeError):
    kind = "auth"


class ReplayError(DecodeError):
    kind = "replay"


class NeedMore(Exception):
    """Internal: a parser ran out of bytes (the frame is truncated)."""
