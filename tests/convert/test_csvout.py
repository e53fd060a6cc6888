"""Lists become JSON text by Arrow's compute functions; the text must be the JSON of the values, whatever they hold."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from redpss.convert.csvout import Unloadable, _as_json_text

_scalars = st.one_of(
    st.lists(st.none() | st.text(st.characters(exclude_categories=["Cs"]), max_size=8), max_size=5),
    st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), max_size=5),
    st.lists(st.none() | st.floats(width=64), max_size=5),
    st.lists(st.none() | st.booleans(), max_size=5),
)


@given(values=st.lists(st.none() | _scalars, max_size=12), start=st.integers(0, 3))
def test_lists_as_json_text_hold_the_same_values(values: list[list[object] | None], start: int) -> None:
    try:
        column = pa.array(values).slice(min(start, len(values)))
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # lists of mixed element types: not one Arrow column
        return
    kept = values[min(start, len(values)) :]
    if any(isinstance(v, float) and math.isinf(v) for value in kept if value for v in value):
        with pytest.raises(Unloadable, match="inside a nested value cannot be loaded"):  # docs/convert.md
            _as_json_text(column)
        return
    texts = _as_json_text(column).to_pylist()
    assert len(texts) == len(kept)
    for text, value in zip(texts, kept, strict=True):
        if value is None:
            assert text is None
        else:  # NaN is not JSON: inside a list it is written as null (docs/convert.md)
            finite = [None if isinstance(v, float) and math.isnan(v) else v for v in value]
            assert json.loads(text) == finite
