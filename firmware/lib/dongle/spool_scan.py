"""dongle.spool's scan of the ring file: where its live records start and end.

Needed when the spool opens and when a damaged file is found, never while items come and go:
Spool loads it for the call and forgets it after (dongle.lazy).
"""
from .spool import DEAD, HEADER, LIVE, SCAN_CHUNK, _read_record


def scan(spool, f, after=-1):
    """Find the oldest live record (seq > after) and the newest record of any state."""
    end = f.seek(0, 2)
    head = newest = None
    offset = 0
    while offset + HEADER <= end:
        found = _read_record(f, offset, end)
        if found is None:
            offset = _next_candidate(f, offset + 1, end)
            continue
        state, seq, payload = found
        if state == LIVE and seq > after and (head is None or seq < head[1]):
            head = (offset, seq)
        if newest is None or seq > newest[1]:
            newest = (offset + HEADER + len(payload), seq)
        offset += HEADER + len(payload)
    spool._tail, spool._end_seq = (newest[0], newest[1] + 1) if newest else (0, 0)
    spool._head, spool._head_seq = head if head else (spool._tail, spool._end_seq)


def _next_candidate(f, offset, end):
    """Skip garbage (a torn record, the cut-off rest of an overwritten one) to a state byte."""
    while offset < end:
        f.seek(offset)
        chunk = f.read(SCAN_CHUNK)
        hits = [i for i in (chunk.find(bytes((LIVE,))), chunk.find(bytes((DEAD,)))) if i >= 0]
        if hits:
            return offset + min(hits)
        offset += len(chunk)
    return end
