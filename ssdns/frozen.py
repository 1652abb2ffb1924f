"""`@frozen`: ssdns's immutable value classes (findings, views, options, targets, lookups): a dataclass at a
third of `@dataclass(frozen=True)`'s cost of creating the class.

Why: dataclasses writes the source of every method it generates and compiles each one on its own (Python
3.11 and 3.12): __init__, __repr__, __eq__, __hash__, and for frozen=True __setattr__ and __delattr__. That
was ~0.6-0.9 ms a class on these machines, and a 3-pod check creates ~30 of them before it sends a query.
Here dataclasses generates only __init__ (the one method whose speed matters: a large run creates its
findings by the ten thousand); __repr__, __eq__ and __hash__ are closures over the class's fields, nothing
compiled, and say what dataclasses' would (the fields in order; a compare=False field left out of equality
and hash; a class's own method kept). dataclasses itself is no extra import: dnspython imports it.

The one difference: immutability is the type checker's, not the interpreter's. typing.dataclass_transform
(frozen_default=True) tells mypy every `@frozen` class is frozen, so an assignment to a field fails CI
(tests/test_frozen.py runs mypy on one); at run time nothing refuses it. The interpreter's refusal would cost
two more compiled methods a class and a slower __init__ (object.__setattr__ per field: 0.25 us an instance
against 0.09). dataclasses.replace, asdict, fields and pattern matching work as on any dataclass.
"""

from __future__ import annotations

import dataclasses
import reprlib
from operator import attrgetter
from typing import Any, Callable, TypeVar, dataclass_transform

T = TypeVar("T", bound=type)


def _nothing(_: object) -> tuple[()]:
    return ()


def _methods(cls: type, shown: tuple[str, ...], compared: list[str]) -> dict[str, Callable[..., Any]]:
    """__repr__, __eq__ and __hash__ over the class's fields: closures, so that nothing is compiled per class;
    the compared values are read in C (attrgetter), as one object."""
    key: Callable[[Any], Any] = attrgetter(*compared) if compared else _nothing

    @reprlib.recursive_repr()
    def __repr__(self: Any) -> str:
        return f"{self.__class__.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in shown)})"

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is self.__class__:
            return key(self) == key(other)
        return NotImplemented

    def __hash__(self: Any) -> int:
        return hash(key(self))

    methods: dict[str, Callable[..., Any]] = {"__repr__": __repr__, "__eq__": __eq__, "__hash__": __hash__}
    for name, fn in methods.items():
        fn.__qualname__ = f"{cls.__qualname__}.{name}"
    return methods


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field, dataclasses.Field))
def frozen(cls: T) -> T:
    """A dataclass, immutable to the type checker: see the module's docstring for why not at run time."""
    own = cls.__dict__
    # What dataclass(eq=True, frozen=True) would keep of the class's own: its __repr__, its __eq__, and its
    # __hash__ unless defining __eq__ alone set __hash__ to None.
    keep_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    made: Any = dataclasses.dataclass(cls, repr=False, eq=False)
    fields = dataclasses.fields(made)
    methods = _methods(made, tuple(f.name for f in fields if f.repr), [f.name for f in fields if f.compare])
    for name, method in methods.items():
        if (name == "__hash__" and not keep_hash) or name not in own:
            setattr(made, name, method)
    return made
