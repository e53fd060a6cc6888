"""Frozen value classes for the modules every command-line start loads, without the dataclasses module.

`@dataclass` is costly at a CLI's start: importing dataclasses loads inspect (and with it ast, dis, tokenize), and
each class it builds compiles its methods with exec(). On `redctl status` that was about a third of the start-up
(bench/bench_cli.py). A Record subclass is declared like a frozen dataclass (annotated fields, defaults, `field()`
with metadata) and behaves like one: keyword or positional construction in field order, a TypeError naming a
missing or unknown field, value equality, hashing, a dataclass-style repr, and assignment refused. The methods are
shared by every subclass; the only per-class work is reading the annotations once. mypy sees a dataclass
(`dataclass_transform`), so constructor calls are checked as before.

The daemons' own classes stay dataclasses; Record is for the code on a command-line tool's path.
"""

from __future__ import annotations

from collections.abc import Mapping

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at run time (mypy treats the name as true)
if TYPE_CHECKING:
    from typing import Any, ClassVar

    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_options: object) -> object:
        return lambda cls: cls


_MISSING: Any = object()


class Field:
    """One declared field: its name, its default (absent: required) and free metadata (as dataclasses.Field)."""

    __slots__ = ("default", "metadata", "name")

    def __init__(self, name: str, default: Any, metadata: Mapping[str, Any]) -> None:
        self.name = name
        self.default = default
        self.metadata = metadata

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r}, metadata={dict(self.metadata)!r})"


def field(*, default: Any = _MISSING, metadata: Mapping[str, Any] | None = None) -> Any:
    """A field with metadata (and optionally a default), as `dataclasses.field(default=..., metadata=...)`."""
    return Field("", default, metadata or {})


class FrozenRecordError(AttributeError):
    """Assignment to a field of a Record (as dataclasses.FrozenInstanceError)."""


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
class Record:
    """Base of a frozen value class: the subclass's annotated names are its fields, in order (base classes' first)."""

    __slots__ = ()
    _record_fields: ClassVar[tuple[Field, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found = {f.name: f for f in cls._record_fields}
        annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 - inspect is what this module avoids
        for name, annotation in annotations.items():
            if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                continue
            declared = cls.__dict__.get(name, _MISSING)
            if isinstance(declared, Field):
                found[name] = Field(name, declared.default, declared.metadata)
                if declared.default is _MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, declared.default)
            else:
                found[name] = Field(name, declared, {})
        cls._record_fields = tuple(found.values())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._record_fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__}() takes {len(fields)} arguments, {len(args)} were given")
        values = dict(zip((f.name for f in fields), args, strict=False))
        for name, value in kwargs.items():
            if name in values:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
            values[name] = value
        unknown = set(values) - {f.name for f in fields}
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected arguments {', '.join(sorted(unknown))}")
        for f in fields:
            value = values.get(f.name, f.default)
            if value is _MISSING:
                raise TypeError(f"{type(self).__name__}() missing required argument {f.name!r}")
            object.__setattr__(self, f.name, value)
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in self._record_fields)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self._record_fields)
        return f"{type(self).__qualname__}({shown})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__ or not isinstance(other, Record):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenRecordError(f"cannot assign to field {name!r} of {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise FrozenRecordError(f"cannot delete field {name!r} of {type(self).__name__}")


def fields(record: type[Record] | Record) -> tuple[Field, ...]:
    """The fields of a Record class or instance, in order (as dataclasses.fields)."""
    return record._record_fields
