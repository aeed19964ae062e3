"""A small text progress bar on stderr, for host commands that take more than a second."""
import sys

WIDTH = 30


class Progress:
    """progress = Progress("writing", total); progress.update(done); progress.close().

    Redraws one line with a carriage return; on a non-terminal it prints only the final line, so
    logs and test captures stay readable."""

    def __init__(self, label, total, stream=None):
        self.label, self.total = label, max(total, 1)
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.done = 0

    def update(self, done):
        self.done = min(done, self.total)
        if self.live:
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def advance(self, step=1):
        self.update(self.done + step)

    def line(self):
        filled = WIDTH * self.done // self.total
        return "%-12s [%s%s] %3d%%" % (self.label, "#" * filled, "." * (WIDTH - filled),
                                       100 * self.done // self.total)

    def close(self):
        self.stream.write(("\r" if self.live else "") + self.line() + "\n")
        self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
