"""Frozen dataclasses without their generated comparison, hash and repr: :func:`frozen`.

``dataclass(frozen=True)`` compiles six methods from source for every class at import
(``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``): about
0.6 M instructions each, 137 M of a 16-port apply's 443 M for the ~40 classes it imports.
:func:`frozen` lets dataclasses generate only ``__init__`` and the two that make the class
frozen, and gives the class ``__eq__``, ``__hash__`` and ``__repr__`` written once here, with
the generated methods' exact meaning (``tests/unit/test_values.py`` compares them).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T")


def _getter(names: tuple[str, ...]) -> Any:
    """A function of an instance giving the tuple of its ``names`` attributes (in C for two or
    more: ``attrgetter``)."""
    if not names:
        return lambda _value: ()
    if len(names) == 1:
        only = names[0]
        return lambda value: (getattr(value, only),)
    return attrgetter(*names)


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def frozen(cls: type[_T]) -> type[_T]:
    """``dataclass(frozen=True)`` of ``cls``, its ``__eq__``, ``__hash__`` and ``__repr__`` not
    compiled per class. As generated: ``==`` compares the tuples of the ``compare`` fields of
    two instances of the very same class (anything else: ``NotImplemented``); the hash is that
    of the tuple of the fields whose ``hash`` is true (``compare`` when ``hash`` is None);
    the repr is ``QualName(field=repr, ...)`` of the ``repr`` fields. What the class body
    defines itself is kept, as dataclass keeps it (a body ``__eq__`` without ``__hash__``
    still gets the fields' hash)."""
    body = cls.__dict__
    own_eq, own_repr = "__eq__" in body, "__repr__" in body
    class_hash = body.get("__hash__", MISSING)
    explicit_hash = not (class_hash is MISSING or (class_hash is None and own_eq))
    made = dataclass(frozen=True, eq=False, repr=False)(cls)
    every = fields(made)  # type: ignore[arg-type]
    qualname = made.__qualname__
    if not own_repr:
        names = tuple(f.name for f in every if f.repr)

        def __repr__(self: Any) -> str:
            shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
            return f"{self.__class__.__qualname__}({shown})"

        __repr__.__qualname__ = f"{qualname}.__repr__"
        made.__repr__ = __repr__  # type: ignore[method-assign]
    if not own_eq:
        compared = _getter(tuple(f.name for f in every if f.compare))

        def __eq__(self: Any, other: object) -> bool:
            if other.__class__ is self.__class__:
                return bool(compared(self) == compared(other))
            return NotImplemented

        __eq__.__qualname__ = f"{qualname}.__eq__"
        made.__eq__ = __eq__  # type: ignore[method-assign]
    if not explicit_hash:
        hashed = _getter(tuple(f.name for f in every if (f.compare if f.hash is None else f.hash)))

        def __hash__(self: Any) -> int:
            return hash(hashed(self))

        __hash__.__qualname__ = f"{qualname}.__hash__"
        made.__hash__ = __hash__  # type: ignore[method-assign]
    return made
