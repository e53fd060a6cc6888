"""Record behaves as the frozen dataclasses it replaces on the command-line path: construction, defaults, equality,
hashing, repr, refused assignment, and fields with metadata."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from redpss.core.record import FrozenRecordError, Record, field, fields


class Point(Record):
    x: int
    y: int = 0
    label: str = field(default="p", metadata={"doc": "a name"})


class Other(Record):
    x: int
    y: int = 0
    label: str = "p"


def test_construction_by_position_and_keyword_with_defaults() -> None:
    assert (Point(1).x, Point(1).y, Point(1).label) == (1, 0, "p")
    assert Point(1, 2, "q") == Point(x=1, y=2, label="q") == Point(1, label="q", y=2)


@pytest.mark.parametrize(
    ("args", "kwargs", "words"),
    [
        ((), {}, "missing required argument 'x'"),
        ((1,), {"z": 3}, "unexpected arguments z"),
        ((1,), {"x": 2}, "multiple values for argument 'x'"),
        ((1, 2, "q", 4), {}, "takes 3 arguments, 4 were given"),
    ],
)
def test_bad_construction_names_the_field(args: tuple[object, ...], kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(TypeError, match=words):
        Point(*args, **kwargs)  # type: ignore[arg-type]


def test_equality_and_hash_by_value_and_class() -> None:
    assert Point(1, 2) == Point(1, 2) and hash(Point(1, 2)) == hash(Point(1, 2))
    assert Point(1, 2) != Point(1, 3)
    assert Point(1, 2) != Other(1, 2)  # same fields, another class: as dataclasses compare
    assert len({Point(1), Point(1), Point(2)}) == 2


def test_repr_is_a_dataclass_repr() -> None:
    assert repr(Point(1, 2)) == "Point(x=1, y=2, label='p')"


def test_fields_cannot_be_assigned_or_deleted() -> None:
    point = Point(1)
    with pytest.raises(FrozenRecordError):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del point.y
    assert point.x == 1 and point.y == 0


def test_fields_in_order_with_defaults_and_metadata() -> None:
    described = fields(Point)
    assert [f.name for f in described] == ["x", "y", "label"]
    assert described[1].default == 0
    assert described[2].default == "p" and described[2].metadata == {"doc": "a name"}
    assert fields(Point(1)) == described
    assert Point.label == "p"  # the class attribute is the default, as a dataclass leaves it


def test_a_subclass_adds_fields_after_its_base() -> None:
    class Labelled(Point):
        colour: str = "red"

    assert [f.name for f in fields(Labelled)] == ["x", "y", "label", "colour"]
    assert Labelled(1, colour="blue") == Labelled(x=1, y=0, label="p", colour="blue")


def test_same_behaviour_as_the_frozen_dataclass_it_replaces() -> None:
    @dataclasses.dataclass(frozen=True)
    class Classic:
        x: int
        y: int = 0
        label: str = "p"

    assert repr(Classic(1, 2)).rsplit(".", 1)[-1].replace("Classic", "Other") == repr(Other(1, 2))
    assert (Classic(1) == Classic(1), Classic(1) == Classic(2)) == (Other(1) == Other(1), Other(1) == Other(2))


def test_importing_record_loads_neither_dataclasses_nor_typing() -> None:
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, redpss.core.record; print('dataclasses' in sys.modules, 'typing' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    assert found == ["False", "False"]
