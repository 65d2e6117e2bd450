"""Value classes without ``dataclasses``: :func:`frozen` and :func:`record`.

``dataclass`` compiles its methods from source for every class at import (about 0.6 M
instructions each), and importing ``dataclasses`` imports ``inspect`` (with ``ast``, ``dis``,
``tokenize``): together a large share of a short command's start-up. :func:`frozen` (a frozen
dataclass) and :func:`record` (a plain, mutable one) give the class ``__init__``, ``__eq__``,
``__hash__``, ``__repr__`` (and, frozen, ``__setattr__`` and ``__delattr__``) written once here,
with the generated methods' exact meaning (``tests/unit/test_values.py`` compares them). Code
here uses :func:`fields` and :func:`replace`; ``dataclasses.fields``, ``replace`` and ``asdict``
still work on these classes (``__dataclass_fields__`` is made on first use, importing
``dataclasses`` then). mypy sees ``dataclass_transform`` and checks them as dataclasses.
"""

from __future__ import annotations

from operator import attrgetter
from types import FunctionType

from multihome import value_inits

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    _T = TypeVar("_T")


class _Marker:
    """A marker value (``dataclasses.MISSING``'s role), shown as its text."""

    __slots__ = ("_text",)

    def __init__(self, text: str) -> None:
        self._text = text

    def __repr__(self) -> str:
        return self._text


#: The marker of "no default".
MISSING: Any = _Marker("MISSING")


class Field:
    """One field of a :func:`frozen` or :func:`record` class (the parts of
    ``dataclasses.Field`` this module and its users read)."""

    __slots__ = ("compare", "default", "default_factory", "hash", "name", "repr", "type")

    def __init__(
        self,
        default: Any,
        default_factory: Any,
        repr: bool,
        hash: bool | None,
        compare: bool,
    ) -> None:
        self.name = ""
        self.type: Any = None
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.hash = hash
        self.compare = compare

    def __repr__(self) -> str:
        return f"Field(name={self.name!r}, default={self.default!r}, compare={self.compare!r})"


def field(
    *,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    repr: bool = True,
    hash: bool | None = None,
    compare: bool = True,
) -> Any:
    """``dataclasses.field`` for :func:`frozen` and :func:`record` classes."""
    if default is not MISSING and default_factory is not MISSING:
        raise ValueError("cannot specify both default and default_factory")
    return Field(default, default_factory, repr, hash, compare)


def fields(class_or_instance: Any) -> tuple[Field, ...]:
    """The fields of a :func:`frozen` or :func:`record` class (or instance), in order; of
    another dataclass, ``dataclasses.fields``."""
    found: tuple[Field, ...] | None = getattr(class_or_instance, "__values_fields__", None)
    if found is None:
        import dataclasses

        return dataclasses.fields(class_or_instance)  # type: ignore[return-value]
    return found


def replace(value: _T, /, **changes: Any) -> _T:
    """``dataclasses.replace`` of a :func:`frozen` or :func:`record` value: a new one with
    ``changes``, every other field as in ``value``."""
    for each in value.__values_fields__:  # type: ignore[attr-defined]
        if each.name not in changes:
            changes[each.name] = getattr(value, each.name)
    return value.__class__(**changes)


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _from_dataclasses(given: Any) -> Field:
    """Our :class:`Field` for a ``dataclasses.field(...)`` (which is then imported already)."""
    from dataclasses import MISSING as THEIRS

    return Field(
        MISSING if given.default is THEIRS else given.default,
        MISSING if given.default_factory is THEIRS else given.default_factory,
        given.repr,
        given.hash,
        given.compare,
    )


def _collect(cls: type) -> tuple[Field, ...]:
    """The fields of ``cls``: those of its :func:`frozen`/:func:`record` bases, then its own
    annotations; class attributes become defaults as with dataclass."""
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for each in base.__dict__.get("__values_fields__", ()):
            found[each.name] = each
    body = cls.__dict__
    for name, annotation in body.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        value = body.get(name, MISSING)
        if type(value).__module__ == "dataclasses" and type(value).__name__ == "Field":
            value = _from_dataclasses(value)
        if isinstance(value, Field):
            made = value
            if made.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, made.default)
        else:
            if isinstance(value, list | dict | set):
                raise ValueError(f"mutable default {type(value)} for field {name} is not allowed")
            made = Field(value, MISSING, True, None, True)
        made.name, made.type = name, annotation
        found[name] = made
    every = tuple(found.values())
    seen_default = False
    for each in every:
        if each.default is not MISSING or each.default_factory is not MISSING:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {each.name!r} follows default argument")
    return every


#: The ``__init__`` code for each number of fields, compiled once (see :func:`_init`).
_TEMPLATES: dict[tuple[int, bool], Any] = {}
#: The default of a field with a default factory, replaced by the factory's value.
_FACTORY: Any = _Marker("<factory>")


def _template_source(count: int, into_dict: bool, name: str = "__init__") -> str:
    """The source of the function ``name(self, _0, ..., _{count-1})`` that :func:`_template`
    gives the code of (``multihome.value_inits`` holds it written out for the common shapes)."""
    params = "".join(f"_{i}, " for i in range(count))
    if into_dict:  # (one item a line, as ruff formats value_inits.py)
        items = "".join(f"            _n{i}: _{i},\n" for i in range(count))
        head = '    _set(\n        self,\n        "__dict__",\n'
        sets = f"{head}        {{\n{items}        }},\n    )\n"
    else:
        sets = "".join(f"    _set(self, _n{i}, _{i})\n" for i in range(count))
    return f"def {name}(self, {params}):\n{sets}    if _factories:\n        _fill(self)\n"


def _template(count: int, into_dict: bool) -> Any:
    """The code of ``__init__(self, _0, ..., _{count-1})`` setting each argument as the
    attribute named by its global ``_n0``, ``_n1``..., then calling ``_fill(self)`` if
    ``_factories``. ``into_dict`` False: with ``object.__setattr__``, as the generated one does
    (the instance keeps CPython's inline attribute values, faster to read than a dict).
    ``into_dict`` True: the instance's ``__dict__`` set once, to a dict display of the
    fields, for a class whose cached properties make that dict on first use anyway
    (:func:`_into_dict`): one C call instead of one through a slot wrapper per field
    (23 for a rule: a tenth of the policy's and the plan's instructions at 256 ports). A dict
    of its own, not the one CPython materialises from the class's shared keys when
    ``self.__dict__`` is first asked: on that one (a split table) the interpreter's
    specialised attribute lookup (``LOAD_ATTR_WITH_HINT``) never applies, and every read of a
    route's or rule's field or cached key took the generic path (the plan's text at 256
    ports: 28.6 -> 23.3 M instructions). For the hint to hit, the cached properties must
    also be stored in one order on every instance (``model.Route.key``).

    The shapes the package's classes use are written out in ``multihome.value_inits``
    (compiled once into the bytecode cache: ``exec`` of :func:`_template_source` costs
    ~0.8 M instructions per shape on every start); any other shape is compiled here, once
    per process."""
    code = _TEMPLATES.get((count, into_dict))
    if code is None:
        written = getattr(value_inits, _written_name(count, into_dict), None)
        if written is not None:
            code = written.__code__.replace(co_name="__init__")
        else:
            space: dict[str, Any] = {}
            exec(_template_source(count, into_dict), {}, space)  # a fixed template
            code = space["__init__"].__code__
        _TEMPLATES[count, into_dict] = code
    return code


def _written_name(count: int, into_dict: bool) -> str:
    """The name of the function of ``multihome.value_inits`` for the shape (``set_5``,
    ``dict_11``)."""
    return f"{'dict' if into_dict else 'set'}_{count}"


def _into_dict(cls: type, every: tuple[Field, ...]) -> bool:
    """Whether ``cls`` gets the dict-store ``__init__`` (:func:`_template`): it has fields, and
    a class attribute of it (or of a base) is a descriptor that keeps its values in the
    instance's ``__dict__`` and says so (``stores_in_instance_dict``: ``model.cached``, the
    keys and texts of routes, rules and addresses), so that every instance gets a dict
    anyway. Then one of its own, set in ``__init__``: one made later by ``with_cached`` or a
    property from the class's shared keys is a split table, on which attribute lookups are
    never specialised (a read's 514 addresses, asked for their address, scope and family
    all through the policy). Every shape is written out in ``value_inits``: no compilation
    at start-up, whatever the field count."""
    return bool(every) and any(
        getattr(type(value), "stores_in_instance_dict", False)
        for base in cls.__mro__[:-1]  # (not object's own attributes)
        for value in vars(base).values()
    )


def _init(qualname: str, every: tuple[Field, ...], into_dict: bool) -> Callable[..., None]:
    """The ``__init__`` of the fields ``every``: the shared code of :func:`_template` with the
    fields' names as its parameters (so positional and keyword arguments, defaults and the
    TypeErrors are Python's own, as with the generated one), no compilation per class."""
    names = tuple(f.name for f in every)
    factories = tuple(
        (f.name, f.default_factory) for f in every if f.default_factory is not MISSING
    )

    def fill(self: Any) -> None:
        for name, factory in factories:
            if getattr(self, name) is _FACTORY:
                object.__setattr__(self, name, factory())

    code = _template(len(names), into_dict).replace(
        co_varnames=("self", *names), co_qualname=f"{qualname}.__init__"
    )
    defaults = tuple(
        f.default if f.default is not MISSING else _FACTORY
        for f in every
        if f.default is not MISSING or f.default_factory is not MISSING
    )
    space: dict[str, Any] = {"_set": object.__setattr__, "_factories": factories, "_fill": fill}
    space.update((f"_n{i}", name) for i, name in enumerate(names))
    made: Callable[..., None] = FunctionType(code, space, "__init__", defaults or None)
    return made


def _getter(names: tuple[str, ...]) -> Any:
    """A function of an instance giving the tuple of its ``names`` attributes (in C for two or
    more: ``attrgetter``)."""
    if not names:
        return lambda _value: ()
    if len(names) == 1:
        only = names[0]
        return lambda value: (getattr(value, only),)
    return attrgetter(*names)


def _frozen_error(name: str) -> Exception:
    from dataclasses import FrozenInstanceError  # only on the error path

    return FrozenInstanceError(f"cannot assign to field {name!r}")


def _setattr(self: Any, name: str, value: object) -> None:
    raise _frozen_error(name)


def _delattr(self: Any, name: str) -> None:
    raise _frozen_error(name)


class _DataclassFields:
    """``__dataclass_fields__`` made on first use: real ``dataclasses.Field`` objects (so that
    ``dataclasses.fields``, ``replace``, ``asdict`` and ``is_dataclass`` work), importing
    ``dataclasses`` only then."""

    def __get__(self, instance: object, owner: type) -> dict[str, Any]:
        import dataclasses

        made: dict[str, Any] = {}
        for each in owner.__values_fields__:  # type: ignore[attr-defined]
            real: Any = dataclasses.field(
                default=dataclasses.MISSING if each.default is MISSING else each.default,
                default_factory=(
                    dataclasses.MISSING if each.default_factory is MISSING else each.default_factory
                ),
                repr=each.repr,
                hash=each.hash,
                compare=each.compare,
            )
            real.name, real.type = each.name, each.type
            real._field_type = dataclasses._FIELD  # type: ignore[attr-defined]
            made[each.name] = real
        if "__values_fields__" in owner.__dict__:
            type.__setattr__(owner, "__dataclass_fields__", made)
        return made


def _make(cls: type[_T], frozen: bool) -> type[_T]:
    """The class ``cls`` with its fields' methods (see the module's docstring). What the class
    body defines itself is kept, as dataclass keeps it (a body ``__eq__`` without
    ``__hash__`` still gets the fields' hash when frozen)."""
    body = cls.__dict__
    own_eq, own_repr = "__eq__" in body, "__repr__" in body
    class_hash = body.get("__hash__", MISSING)
    explicit_hash = not (class_hash is MISSING or (class_hash is None and own_eq))
    every = _collect(cls)
    qualname = cls.__qualname__
    setattr(cls, "__values_fields__", every)  # noqa: B010 (a dunder mypy does not know)
    setattr(cls, "__dataclass_fields__", _DataclassFields())  # noqa: B010
    setattr(cls, "__match_args__", tuple(f.name for f in every))  # noqa: B010
    if "__init__" not in body:
        made = _init(qualname, every, _into_dict(cls, every))
        setattr(cls, "__init__", made)  # noqa: B010
    if frozen:
        setattr(cls, "__setattr__", _setattr)  # noqa: B010
        setattr(cls, "__delattr__", _delattr)  # noqa: B010
    if not own_repr:
        names = tuple(f.name for f in every if f.repr)

        def __repr__(self: Any) -> str:
            shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
            return f"{self.__class__.__qualname__}({shown})"

        __repr__.__qualname__ = f"{qualname}.__repr__"
        setattr(cls, "__repr__", __repr__)  # noqa: B010
    if not own_eq:
        compared = _getter(tuple(f.name for f in every if f.compare))

        def __eq__(self: Any, other: object) -> bool:
            if other.__class__ is self.__class__:
                return bool(compared(self) == compared(other))
            return NotImplemented

        __eq__.__qualname__ = f"{qualname}.__eq__"
        setattr(cls, "__eq__", __eq__)  # noqa: B010
    if frozen and not explicit_hash:
        hashed = _getter(tuple(f.name for f in every if (f.compare if f.hash is None else f.hash)))

        def __hash__(self: Any) -> int:
            return hash(hashed(self))

        __hash__.__qualname__ = f"{qualname}.__hash__"
        setattr(cls, "__hash__", __hash__)  # noqa: B010
    elif not frozen and not explicit_hash:
        setattr(cls, "__hash__", None)  # noqa: B010 (eq without frozen: unhashable)
    return cls


def _frozen(cls: type[_T]) -> type[_T]:
    return _make(cls, frozen=True)


def _record(cls: type[_T]) -> type[_T]:
    return _make(cls, frozen=False)


def _shapes_used() -> list[tuple[int, bool]]:
    """The ``__init__`` shapes (field count, into the instance dict) of every class of the
    package that gets its ``__init__`` from here (all its modules imported)."""
    import importlib
    import os
    import pkgutil

    package = os.path.dirname(value_inits.__file__ or "")  # (the package, by path: layers)
    shapes: set[tuple[int, bool]] = set()
    for module in pkgutil.walk_packages([package], "multihome."):
        if module.name == "multihome.__main__":
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if not isinstance(value, type) or "__values_fields__" not in vars(value):
                continue
            init: Any = vars(value).get("__init__")
            if not isinstance(init, FunctionType) or "_fill" not in init.__globals__:
                continue  # the class's own __init__
            every = vars(value)["__values_fields__"]
            shapes.add((len(every), _into_dict(value, every)))
    return sorted(shapes, key=lambda shape: (shape[1], shape[0]))


def _inits_source(shapes: list[tuple[int, bool]]) -> str:
    """The text of ``multihome/value_inits.py`` for ``shapes``: its docstring and, per shape,
    :func:`_template_source` as ``set_N``/``dict_N`` (one parameter a line, as ``ruff format``
    writes the template's trailing comma)."""
    head = (value_inits.__doc__ or "").strip("\n")
    parts = [f'"""{head}\n"""\n\n# ruff: noqa: F821\n']
    for count, into_dict in shapes:
        name = _written_name(count, into_dict)
        body = _template_source(count, into_dict, name).split("\n", 1)[1]
        params = "".join(f"    {param},\n" for param in ["self", *(f"_{i}" for i in range(count))])
        parts.append(f"\ndef {name}(\n{params}):\n{body}")
    return "\n".join(parts)


def _write_inits(argv: list[str]) -> int:
    """``python -m multihome.values --write-inits``: rewrite ``multihome/value_inits.py`` for
    the shapes the package's classes use now (after a class gains a field count no other
    class has; tests/unit/test_values.py names this command when one is missing)."""
    if argv != ["--write-inits"]:
        print("usage: python -m multihome.values --write-inits", file=sys.stderr)
        return 2
    path = value_inits.__file__
    assert path is not None
    text = _inits_source(_shapes_used())
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(f"wrote {path}")
    return 0


if TYPE_CHECKING:

    @dataclass_transform(frozen_default=True, field_specifiers=(field,))
    def frozen(cls: type[_T]) -> type[_T]:
        """``dataclass(frozen=True)`` of ``cls``, without ``dataclasses``."""
        return _frozen(cls)

    @dataclass_transform(field_specifiers=(field,))
    def record(cls: type[_T]) -> type[_T]:
        """``dataclass`` (mutable) of ``cls``, without ``dataclasses``."""
        return _record(cls)

else:
    frozen, record = _frozen, _record

if __name__ == "__main__":
    import sys

    sys.exit(_write_inits(sys.argv[1:]))
