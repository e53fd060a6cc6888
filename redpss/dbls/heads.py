"""The heads of a large buffer's lines checked column by column: the quick way for lines in the client's own layout.

A compiled pattern that checks every line's head (redpss.dbls.batch) spends most of its time walking the text of
each line to the next line break, byte by byte. The lines PSS_LOG sends share one layout: a 26-byte timestamp with
microseconds, a space, the level, a space, the source and ': '. So the first 64 bytes of every line are copied into
the rows of a matrix (one vectorised search for the line breaks, one gather) and checked with a few whole-matrix
numpy operations, eight bytes at a time where the layout is fixed: the timestamp's digits and separators against a
template, the level as one word, the source up to its ': '.

This check only says yes for certain: a buffer it cannot accept whole (another timestamp form, a `T` between date
and time, a source longer than fits in the row or holding a control character, and every bad line) goes to the
patterns, which decide and name what is wrong. The tests hold the two to the same answers.
"""

from __future__ import annotations

import threading

import numpy as np

ROW = 64  # bytes of each line looked at: timestamp and space (27), level and space (5-6), source and ': ' (<= 31)
SOURCE_AT = 32  # where the source starts after INFO and WARN; after DEBUG, ERROR and ALERT it starts one later
MIN_BYTES = 16 * 1024  # a smaller payload is checked faster by the patterns alone (numpy costs ~1 us per operation)
PIECE_BYTES = 1024 * 1024  # how much of a payload one pass of the check takes
SHORTEST_LINES = 16  # a piece whose lines are shorter than this on average goes to the patterns
KEPT_MASK_BYTES = 2 * PIECE_BYTES  # the largest line-break mask kept between calls (a piece ends after a line break)
_LAYOUT = b"0000-00-00 00:00:00.000000 "  # 0 stands for any digit


def _word(text: bytes) -> np.uint64:
    return np.uint64(int.from_bytes(text.ljust(8, b"\0"), "little"))


def _layout_words() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first 32 bytes as four little-endian words: the template, the bits that must be 0 after XOR with it
    (a digit's high nibble, every bit of a separator), and what to add so that 10-15 carry into that nibble."""
    template, must_be_zero, add = bytearray(32), bytearray(32), bytearray(32)
    for at, byte in enumerate(_LAYOUT):
        template[at] = byte
        must_be_zero[at], add[at] = (0xF0, 0x06) if byte == ord("0") else (0xFF, 0x00)
    return _row_of_words(template), _row_of_words(must_be_zero), _row_of_words(add)


def _row_of_words(data: bytearray) -> np.ndarray:
    return np.frombuffer(bytes(data), "<u8").reshape(1, 4)


_TEMPLATE, _MUST_BE_ZERO, _ADD = _layout_words()
_FIVE, _SIX = _word(b"\xff" * 5), _word(b"\xff" * 6)
_INFO, _WARN, _DEBUG = _word(b"INFO "), _word(b"WARN "), _word(b"DEBUG ")
_ERROR, _ALERT = _word(b"ERROR "), _word(b"ALERT ")
_BYTES_3, _BYTES_5 = np.uint64(24), np.uint64(40)


class _Scratch(threading.local):
    """A buffer for the line-break mask, kept between calls: a fresh one of a payload's size each time came from
    the top of the heap, which glibc gives back and takes again, a page fault per 4 KiB, as costly as the check."""

    mask = np.empty(0, np.bool_)


_SCRATCH = _Scratch()


def _scratch(size: int) -> np.ndarray:
    if size > KEPT_MASK_BYTES:
        return np.empty(size, np.bool_)  # a rare large payload: not kept for the process's life
    if _SCRATCH.mask.size < size:
        _SCRATCH.mask = np.empty(min(max(size, 2 * _SCRATCH.mask.size), KEPT_MASK_BYTES), np.bool_)
    mask: np.ndarray = _SCRATCH.mask[:size]
    return mask


def _rows(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The first ROW bytes of each line, one line per row; a row reaching beyond the buffer has zeros there."""
    full = data.size - ROW + 1  # windows that fit in the buffer
    late = int(np.searchsorted(starts, max(full, 0)))  # the first line starting in the last ROW - 1 bytes
    rows: np.ndarray
    if late:
        windows = np.lib.stride_tricks.as_strided(data, shape=(full, ROW), strides=(1, 1), writeable=False)
        rows = windows[np.minimum(starts, full - 1)]
    else:
        rows = np.empty((starts.size, ROW), np.uint8)
    if late < starts.size:
        first = int(starts[late])
        tail = np.zeros(data.size - first + ROW, np.uint8)
        tail[: data.size - first] = data[first:]
        tail_windows = np.lib.stride_tricks.as_strided(tail, shape=(tail.size - ROW + 1, ROW), strides=(1, 1))
        rows[late:] = tail_windows[starts[late:] - first]
    return rows


def usual_heads(text: bytes | bytearray) -> tuple[int, list[int]] | None:
    """(lines without the continuation lines, where the ERROR and ALERT lines start) when every line of `text` is a
    continuation line or has a head in the usual layout; None when this check cannot tell (the patterns decide).

    `text` ends with a line break (the caller checked). It is looked at in pieces of about PIECE_BYTES cut after a
    line break, so the matrices stay small whatever the payload's size.
    """
    size = len(text)
    lines, db_starts = 0, []
    start = 0
    while start < size:
        end = size if size - start <= PIECE_BYTES else text.find(b"\n", start + PIECE_BYTES - 1) + 1
        counted = _usual_piece(text, start, end, first=start == 0)
        if counted is None:
            return None
        lines += counted[0]
        db_starts += counted[1]
        start = end
    return lines, db_starts


def _usual_piece(text: bytes | bytearray, offset: int, end: int, *, first: bool) -> tuple[int, list[int]] | None:
    """usual_heads of the lines in text[offset:end], which ends with a line break; `first`: it starts the payload."""
    size = end - offset
    data = np.frombuffer(text, np.uint8, count=size, offset=offset)
    breaks = np.equal(data, 10, out=_scratch(size))
    if np.count_nonzero(breaks) > size // SHORTEST_LINES:
        return None  # mostly short lines: not the client's layout, and a row of ROW bytes each would cost far more
    ends = np.flatnonzero(breaks)
    starts = np.empty(len(ends), np.intp)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    rows = _rows(data, starts)
    words = rows.view("<u8")
    xored = words[:, :4] ^ _TEMPLATE  # a digit becomes 0-9 (and 10-15 carry into the high nibble with _ADD)
    bits = xored + _ADD
    bits |= xored
    bits &= _MUST_BE_ZERO
    stamp_bad = (bits[:, 0] | bits[:, 1] | bits[:, 2] | bits[:, 3]) != 0
    level = (words[:, 3] >> _BYTES_3) | (words[:, 4] << _BYTES_5)  # bytes 27 to 34
    five, six = level & _FIVE, level & _SIX
    short = (five == _INFO) | (five == _WARN)
    to_database = (six == _ERROR) | (six == _ALERT)
    ok = ~stamp_bad & (short | to_database | (six == _DEBUG))
    source = rows[:, SOURCE_AT:]
    blank = source <= 32  # a space ends the source; so would a tab, a line break or any other control byte
    blank[:, 0] &= short  # after a five-letter level, the space that ends it
    colon = np.minimum((source == 58).argmax(axis=1), ROW - SOURCE_AT - 2)
    ok &= blank.argmax(axis=1) == colon + 1  # the first blank is right after the first colon: no blank before it
    at = np.arange(len(starts)) * ROW + SOURCE_AT + colon
    flat = rows.ravel()
    ok &= (flat[at] == 58) & (flat[at + 1] == 32)  # ': ' (a row without a colon has argmax 0)
    continued = rows[:, 0] == 9
    if (first and continued[0]) or not (ok | continued).all():
        return None
    return len(starts) - int(np.count_nonzero(continued)), (starts[to_database & ok] + offset).tolist()
