"""An HTML tokenizer fed bytes as they arrive, for pages too long to hold (a PPC day of values is
66 KB): it keeps only an unfinished tag between feeds, and hands on start tags, end tags and text.

    scanner = Scanner(handler)   # handler.start(tag, attrs), .end(tag), .text(bytes)
    scanner.feed(chunk) ...; scanner.close()

Tag names are lower case; attrs is {name: value} (names lower case, values with character
references resolved). Comments, <!DOCTYPE>, <?…?> and the insides of <script> and <style> are
skipped; a '<' that starts no tag is text. A "tag" longer than MAX_TAG is taken as text.
"""
MAX_TAG = 4096
VOID = ("input", "br", "meta", "img", "hr", "link", "col", "base", "wbr", "area", "source")
# each a reference's name, then its character
_ENTITIES = ("amp&", "lt<", "gt>", "quot\"", "apos'", "nbsp\u00a0", "auml\u00e4", "ouml\u00f6",
             "uuml\u00fc", "Auml\u00c4", "Ouml\u00d6", "Uuml\u00dc", "szlig\u00df", "euro\u20ac",
             "deg\u00b0", "sup3\u00b3")
_SPACE = b" \t\r\n\f"


def unescape(text):
    """Character references -> characters ('&amp;' '&#39;' '&#x27;' '&ouml;'); unknown ones stay."""
    if "&" not in text:
        return text
    out, at = [], 0
    while True:
        amp = text.find("&", at)
        if amp < 0:
            out.append(text[at:])
            return "".join(out)
        end = text.find(";", amp + 1)
        found = _reference(text[amp + 1:end]) if 0 < end - amp <= 10 else None
        if found is None:   # a plain '&'
            out.append(text[at:amp + 1])
            at = amp + 1
        else:
            out.append(text[at:amp])
            out.append(found)
            at = end + 1


def _reference(name):
    if name[:1] == "#":
        digits, base = (name[2:], 16) if name[1:2] in ("x", "X") else (name[1:], 10)
        try:
            code = int(digits, base)
            return chr(code) if 0 < code < 0x110000 else None
        except ValueError:
            return None
    for entry in _ENTITIES:
        if entry[:-1] == name:
            return entry[-1]
    return None


def text(data):
    """Bytes of a page -> str, whitespace runs as one space; bytes that are not UTF-8 become
    '?' (gateways write UTF-8; a broken byte must not lose the rest)."""
    try:
        value = bytes(data).decode()
    except ValueError:
        value = "".join(chr(b) if b < 128 else "?" for b in data)
    return unescape(" ".join(value.split()))


class Scanner:
    def __init__(self, handler):
        self.handler = handler
        self.rest = b""     # an unfinished tag (or comment) from the last feed
        self.raw = None     # inside <script>/<style>: the end tag that ends it

    def feed(self, data):
        buf = self.rest + bytes(data) if self.rest else bytes(data)
        self.rest = b""
        at, size, handler = 0, len(buf), self.handler
        while at < size:
            if self.raw is not None:
                end = buf.find(self.raw, at)
                if end < 0:   # keep what could be the start of the end tag
                    self.rest = buf[max(at, size - len(self.raw)):]
                    return
                at, self.raw = end, None
            lt = buf.find(b"<", at)
            if lt < 0:
                handler.text(buf[at:])
                return
            if lt > at:
                handler.text(buf[at:lt])
            at = self._markup(buf, lt)
            if at < 0:   # unfinished: wait for more
                self.rest = buf[lt:]
                return

    def _markup(self, buf, lt):
        """Handle what starts at '<' (a tag, a comment, or a plain '<'); where to go on, -1 when
        the rest has not arrived yet."""
        nxt = buf[lt + 1:lt + 2]
        if not nxt:
            return -1
        if buf[lt:lt + 4] == b"<!--":
            end = buf.find(b"-->", lt + 4)
            if end < 0:
                return -1 if len(buf) - lt < MAX_TAG else len(buf)   # (an endless one: gone)
            return end + 3
        if not (nxt.isalpha() or nxt in b"/!?"):
            self.handler.text(b"<")
            return lt + 1
        gt = _tag_end(buf, lt)
        if gt < 0:
            if len(buf) - lt < MAX_TAG:
                return -1
            self.handler.text(b"<")
            return lt + 1
        self._tag(buf[lt + 1:gt])
        return gt + 1

    def _tag(self, inner):
        if inner[:1] in (b"!", b"?"):
            return
        closing = inner[:1] == b"/"
        name, at = _word(inner, 1 if closing else 0)
        if not name:
            return
        if closing:
            self.handler.end(name)
            return
        self.handler.start(name, _attributes(inner, at))
        if name in ("script", "style"):
            self.raw = b"</" + name.encode()
        elif inner[-1:] == b"/" and name not in VOID:
            self.handler.end(name)

    def close(self):
        if self.rest and self.raw is None:
            self.handler.text(self.rest)
        self.rest = b""


def _tag_end(buf, lt):
    """The index of the '>' that ends the tag at lt (not one inside a quoted value), or -1."""
    gt = buf.find(b">", lt)
    if gt < 0 or (buf.find(b'"', lt, gt) < 0 and buf.find(b"'", lt, gt) < 0):
        return gt
    quote, prev = 0, 0
    for i in range(lt + 1, len(buf)):
        ch = buf[i]
        if quote:
            if ch == quote:
                quote = 0
        elif ch in (34, 39) and prev == 61:   # a quote right after '='
            quote = ch
        elif ch == 62:
            return i
        if ch not in (32, 9, 10, 13):
            prev = ch
    return -1


def _word(inner, at):
    """The tag or attribute name starting at `at` (lower case) and where it ends."""
    end = at
    while end < len(inner) and inner[end] not in b" \t\r\n\f/=>":
        end += 1
    return text(inner[at:end]).lower() if end > at else "", end


def _attributes(inner, at):
    attrs = {}
    size = len(inner)
    while at < size:
        while at < size and inner[at] in b" \t\r\n\f/":
            at += 1
        name, at = _word(inner, at)
        if not name:
            at += 1
            continue
        while at < size and inner[at] in _SPACE:
            at += 1
        value = ""
        if at < size and inner[at] == 61:   # '='
            at += 1
            while at < size and inner[at] in _SPACE:
                at += 1
            if at < size and inner[at] in (34, 39):
                end = inner.find(inner[at:at + 1], at + 1)
                end = size if end < 0 else end
                value, at = text(inner[at + 1:end]), end + 1
            else:
                end = at
                while end < size and inner[end] not in _SPACE:
                    end += 1
                value, at = text(inner[at:end]), end
        if name not in attrs:
            attrs[name] = value
    return attrs
