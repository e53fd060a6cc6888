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
KEPT_LAYOUT_ROWS = 8192  # the most rows whose layout words are kept between calls (3 * 512 KiB)
_LAYOUT = b"0000-00-00 00:00:00.000000 "  # 0 stands for any digit


def _word(text: bytes) -> np.uint64:
    return np.uint64(int.from_bytes(text.ljust(8, b"\0"), "little"))


def _layout_words() -> np.ndarray:
    """A row's ROW bytes as little-endian words, three times: the template of the timestamp, the bits that must be 0
    after XOR with it (a digit's high nibble, every bit of a separator), and what to add so that 10-15 carry into
    that nibble. Beyond the timestamp all three are 0: those bytes are not looked at here."""
    layout = np.zeros((3, ROW), np.uint8)
    for at, byte in enumerate(_LAYOUT):
        layout[:, at] = (byte, 0xF0, 0x06) if byte == ord("0") else (byte, 0xFF, 0x00)
    return layout.view("<u8")


class _Layouts:
    """The layout words repeated for `rows` rows, kept between calls: numpy combines two whole C-ordered matrices
    of one shape as one long vector, but a row broadcast against a matrix costs a call of its inner loop per row."""

    words = _layout_words()
    tiled = np.empty((3, 0, ROW // 8), np.uint64)

    @classmethod
    def of(cls, rows: int) -> np.ndarray:
        if rows > KEPT_LAYOUT_ROWS:
            return np.repeat(cls.words[:, None, :], rows, axis=1)  # a rare piece of many lines: not kept
        if cls.tiled.shape[1] < rows:
            cls.tiled = np.repeat(cls.words[:, None, :], min(max(rows, 2 * cls.tiled.shape[1]), KEPT_LAYOUT_ROWS), 1)
        return cls.tiled[:, :rows]


_FIVE, _SIX = _word(b"\xff" * 5), _word(b"\xff" * 6)
_INFO, _WARN, _DEBUG = _word(b"INFO "), _word(b"WARN "), _word(b"DEBUG ")
_ERROR, _ALERT = _word(b"ERROR "), _word(b"ALERT ")
_BYTES_3, _BYTES_5 = np.uint64(24), np.uint64(40)
_ONE = np.uint64(1)
_GOOD_ROW = np.frombuffer(_LAYOUT + b"INFO x: ".ljust(ROW - len(_LAYOUT), b"\0"), np.uint8)


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
    data = np.frombuffer(text, np.uint8, count=end - offset, offset=offset)
    ends = _line_ends(data)
    if ends is None:
        return None
    starts = np.empty(len(ends), np.intp)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    rows = _rows(data, starts)
    continued = rows[:, 0] == 9
    continuations = int(np.count_nonzero(continued))
    if continuations:
        if first and continued[0]:
            return None
        rows[continued] = _GOOD_ROW  # checked like the rest, a continuation line passes: every row must pass
    words = rows.view("<u8")
    template, must_be_zero, add = _Layouts.of(len(starts))
    xored = words ^ template  # a digit becomes 0-9 (and 10-15 carry into the high nibble with `add`)
    bits = xored + add
    bits |= xored
    bits &= must_be_zero
    if bits.any():
        return None
    level = (words[:, 3] >> _BYTES_3) | (words[:, 4] << _BYTES_5)  # bytes 27 to 34
    five, six = level & _FIVE, level & _SIX
    short = (five == _INFO) | (five == _WARN)
    to_database = (six == _ERROR) | (six == _ALERT)
    if not (short | to_database | (six == _DEBUG)).all():
        return None
    # The source ends at its first ': ': the first byte that is a colon or a blank (a space, a tab, a line break or
    # any other control byte) must be a colon followed by a space.
    stop = rows <= 32  # the whole rows: one long vector for numpy (the source's columns alone: a call per row)
    stop |= rows == 58
    stop[:, SOURCE_AT] &= short  # after a five-letter level, byte SOURCE_AT is the space that ends it
    at = np.minimum(stop[:, SOURCE_AT:].argmax(axis=1), ROW - SOURCE_AT - 2)  # no stop: argmax 0, refused below
    at += _first_of_rows(len(starts))
    flat = rows.ravel()
    if not ((flat[at] == 58) & (flat[at + 1] == 32)).all():
        return None
    return len(starts) - continuations, (starts[to_database] + offset).tolist()


def _line_ends(data: np.ndarray) -> np.ndarray | None:
    """Where the line breaks of `data` are; None when its lines are mostly short (then not the client's layout,
    and a row of ROW bytes for each would cost far more than the patterns).

    numpy's search of a byte mask for its True entries costs several times the comparison that makes the mask, so
    the mask is searched eight bytes at a time: a word of it with one line break tells where by its one set bit. A
    word with two (a line shorter than eight bytes, a short continuation line) falls back to the byte-wise search.
    """
    size = data.size
    padded = -(-size // 8) * 8
    mask = _scratch(padded)
    np.equal(data, 10, out=mask[:size])
    mask[size:] = False
    words = mask.view(np.uint64)
    hits = np.flatnonzero(words != 0)  # numpy's search of a bool array is fast, of other types slow
    found = words[hits]
    if (found & (found - _ONE)).any():
        if np.count_nonzero(mask) > size // SHORTEST_LINES:
            return None
        return np.flatnonzero(mask)
    if len(hits) > size // SHORTEST_LINES:
        return None
    bit = np.frexp(found.astype(np.float64))[1] - 1  # 8 * the byte's place in the word (little-endian)
    ends: np.ndarray = hits * 8 + (bit >> 3)
    return ends


def _first_of_rows(count: int) -> np.ndarray:
    """Where each of `count` rows' source starts in the rows' flat bytes (a new array: the caller adds to it)."""
    return np.arange(SOURCE_AT, count * ROW, ROW)
