"""values.frozen: the same ``==``, hash and repr as ``dataclass(frozen=True)``'s generated
methods, for classes with every kind of field option, and for the model's own classes
compared with the same class built by the stock decorator."""

from __future__ import annotations

import dataclasses
import inspect
import ipaddress
import pickle
import subprocess
import sys
from dataclasses import FrozenInstanceError, field
from typing import Any

import pytest

from multihome import model, values
from multihome.values import frozen, record


def both(namespace: dict[str, Any]) -> tuple[type, type]:
    """The class described by ``namespace`` (annotations and defaults) made by
    ``dataclass(frozen=True)`` and by :func:`frozen`."""
    made = []
    for decorate in (dataclasses.dataclass(frozen=True), frozen):
        made.append(decorate(type("Sample", (), dict(namespace))))
    return made[0], made[1]


#: More fields, each with a default.
_WIDE = {f"f{i}": 0 for i in range(10)}

SHAPES: list[dict[str, Any]] = [
    {"__annotations__": {"a": "int", **{name: "int" for name in _WIDE}}, **_WIDE},
    {"__annotations__": {}},
    {"__annotations__": {"a": "int"}},
    {"__annotations__": {"a": "int", "b": "str"}, "b": "x"},
    {
        "__annotations__": {"a": "int", "b": "str", "c": "tuple[int, ...]", "d": "float"},
        "b": field(default="x", compare=False),
        "c": field(default=(), repr=False),
        "d": field(default=0.5, hash=False),
    },
    {
        "__annotations__": {"a": "int", "b": "int"},
        "b": field(default=1, compare=False, hash=True),
    },
]


def _field_count(self: Any) -> int:
    return len(vars(self))


@pytest.mark.parametrize("into_dict", [False, True], ids=["setattr", "cached"])
@pytest.mark.parametrize("shape", range(len(SHAPES)))
def test_equality_hash_and_repr_are_the_generated_ones(shape: int, into_dict: bool) -> None:
    """For every pair of sample values: ``==``, ``!=``, the hash and the repr are those of the
    stock frozen dataclass; another class is never equal; the class stays frozen. Also for a
    class with a cached property (``into_dict``: its ``__init__`` stores the fields into the
    instance dict), whose fields are in ``vars()`` as the stock class's are."""
    namespace = dict(SHAPES[shape])
    if into_dict:
        namespace["size"] = model.cached(_field_count)
    stock, ours = both(namespace)
    wide = len(dataclasses.fields(stock)) > 0  # a class without fields: nothing to store
    assert ("__dict__" in ours.__init__.__code__.co_consts) == (into_dict and wide)
    if into_dict and wide:  # a dict of its own, the fields first, in order
        assert list(vars(ours(*range(len(dataclasses.fields(stock)))))) == [
            f.name for f in dataclasses.fields(stock)
        ]
    names = [f.name for f in dataclasses.fields(stock)]
    rows = [
        dict(zip(names, values, strict=False))
        for values in ((1, "x", (1,), 0.5), (1, "y", (2,), 0.25), (2, "x", (1,), 0.5))
    ]
    for left in rows:
        for right in rows:
            a, b = stock(**left), stock(**right)
            c, d = ours(**left), ours(**right)
            assert (a == b, a != b) == (c == d, c != d)
            assert hash(a) == hash(c) and repr(a) == repr(c)
            assert vars(a) == vars(c)
        assert ours(**left).__eq__(stock(**left)) is NotImplemented
        with pytest.raises(FrozenInstanceError):
            ours(**left).a = 3  # type: ignore[attr-defined]
    assert ours.__repr__.__qualname__ == stock.__repr__.__qualname__


def test_a_body_eq_keeps_its_own_and_gets_the_fields_hash() -> None:
    """What the class body defines stays, as with dataclass: an own ``__eq__`` (without
    ``__hash__``) still gets the fields' hash, an own ``__hash__`` and ``__repr__`` stay."""

    def eq(self: Any, other: object) -> bool:
        return True

    def own_hash(self: Any) -> int:
        return 7

    namespace: dict[str, Any] = {"__annotations__": {"a": "int"}, "__eq__": eq}
    stock, ours = both(namespace)
    assert ours(1) == ours(2) and hash(ours(1)) == hash(stock(1)) == hash((1,))
    namespace = {"__annotations__": {"a": "int"}, "__hash__": own_hash, "__repr__": lambda s: "r"}
    stock, ours = both(namespace)
    assert hash(ours(1)) == hash(stock(1)) == 7 and repr(ours(1)) == repr(stock(1)) == "r"


MODEL_VALUES = [
    model.Link(name="eth0", index=2, mac="52:54:00:00:00:01"),
    model.Address(ifname="eth0", interface=ipaddress.ip_interface("10.0.0.5/24")),
    model.Route(
        table=254,
        dst=ipaddress.ip_network("0.0.0.0/0"),
        ifname="eth0",
        gateway=ipaddress.ip_address("10.0.0.1"),
    ),
    model.Rule(family=4, priority=10000, table=10001, src=ipaddress.ip_network("10.0.0.5/32")),
    model.Sysctl("net.ipv4.conf.eth0.arp_ignore", "1"),
    model.Table(id=10001, name="mh-eth0", ifname="eth0"),
]


@pytest.mark.parametrize("value", MODEL_VALUES, ids=lambda v: type(v).__name__)
def test_the_model_compares_hashes_and_prints_as_before(value: Any) -> None:
    """Each model class against itself built by ``dataclass(frozen=True)`` (the decorator it
    had): the same repr, equal values equal, a changed field unequal both ways, and values
    that survive pickling (the agent and the bench pass them between processes)."""
    cls = type(value)
    stock = dataclasses.make_dataclass(
        cls.__name__,
        [
            (f.name, f.type, field(compare=f.compare, repr=f.repr, hash=f.hash))
            for f in dataclasses.fields(cls)
        ],
        frozen=True,
    )
    stock.__qualname__ = cls.__qualname__
    values = {f.name: getattr(value, f.name) for f in dataclasses.fields(cls)}
    assert repr(value) == repr(stock(**values))
    twin = cls(**values)
    assert twin == value and hash(twin) == hash(value)
    if "__hash__" not in vars(cls):  # Address, Route and Rule hash their key (model.py)
        assert hash(value) == hash(stock(**values))
    changed = next(
        f for f in dataclasses.fields(cls) if f.compare and isinstance(values[f.name], int | str)
    )
    other = dataclasses.replace(value, **{changed.name: values[changed.name] * 2})
    assert other != value
    assert not other.__eq__(value)
    assert pickle.loads(pickle.dumps(value)) == value


def test_init_takes_and_refuses_what_the_generated_one_does() -> None:
    """``__init__`` of every shape: the same values from positional and keyword arguments,
    defaults and default factories (a new value each time), the same signature, and the
    same TypeError text for a missing, an unexpected and a doubled argument."""
    namespace: dict[str, Any] = {
        "__annotations__": {"a": "int", "b": "str", "c": "list[int]"},
        "b": "x",
        "c": field(default_factory=list),
    }
    stock, ours = both(namespace)
    shown = [
        [(p.name, repr(p.default)) for p in inspect.signature(made).parameters.values()]
        for made in (ours, stock)
    ]
    assert shown[0] == shown[1]
    for args, kwargs in (((1,), {}), ((1, "y"), {}), ((), {"a": 2, "c": [3]}), ((1,), {"b": "z"})):
        assert repr(ours(*args, **kwargs)) == repr(stock(*args, **kwargs))
    assert ours(1).c is not ours(1).c
    for args, kwargs in (((), {}), ((1,), {"d": 2}), ((1,), {"a": 2}), ((1, "x", [], 4), {})):
        with pytest.raises(TypeError) as theirs:
            stock(*args, **kwargs)
        with pytest.raises(TypeError) as mine:
            ours(*args, **kwargs)
        assert str(mine.value) == str(theirs.value)


def test_a_record_is_a_plain_dataclass() -> None:
    """:func:`record` against ``dataclass()``: mutable, unhashable, the same ``==`` and repr,
    and a default factory called per instance."""
    namespace: dict[str, Any] = {
        "__annotations__": {"a": "int", "b": "list[int]"},
        "b": field(default_factory=list, compare=False),
    }
    stock = dataclasses.dataclass(type("Sample", (), dict(namespace)))
    ours = record(type("Sample", (), dict(namespace)))
    value = ours(1)
    value.a = 2
    value.b.append(3)
    assert repr(value) == repr(stock(2, [3])) and value == ours(2) and value != ours(1)
    assert ours.__hash__ is None is stock.__hash__  # type: ignore[comparison-overlap]
    assert ours(1).b == [] and ours(1).b is not ours(1).b


def test_dataclasses_functions_still_work_and_code_here_avoids_them() -> None:
    """``dataclasses.fields``, ``replace``, ``asdict`` and ``is_dataclass`` on a model value
    (``__dataclass_fields__`` made on first use) agree with :func:`values.fields` and
    :func:`values.replace`; a field's own default stays a class attribute as with dataclass."""
    route = MODEL_VALUES[2]
    assert dataclasses.is_dataclass(route)
    assert [f.name for f in dataclasses.fields(route)] == [f.name for f in values.fields(route)]
    assert dataclasses.replace(route, metric=7) == values.replace(route, metric=7)
    assert values.replace(route, metric=7).metric == 7 and route.metric == 0
    assert dataclasses.asdict(route)["ifname"] == "eth0"
    assert model.Route.metric == 0 and model.Address.position == 0
    with pytest.raises(FrozenInstanceError):
        del route.metric  # type: ignore[misc]


def test_a_plain_apply_imports_neither_dataclasses_nor_typing() -> None:
    """The modules of a whole apply (multihome.apply_cli and what it imports up front) and
    the model's classes load without ``dataclasses`` and so without ``inspect``, ``ast`` and
    ``dis`` (a fifth of a short apply's instructions), and without ``typing`` (annotations
    only, for mypy): checked in a fresh interpreter."""
    code = (
        "import sys; from multihome import apply_cli, engine, policy, plan, facts;"
        " from multihome.backend import netlink; from multihome.source import leases, portfacts;"
        " from multihome.safety import checks; from multihome.transaction import pause;"
        " print(sorted({'dataclasses', 'inspect', 'ast', 'dis', 'typing'} & set(sys.modules)))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "[]"


def test_written_templates_are_the_compiled_ones_and_cover_the_package() -> None:
    """Each function of ``multihome.value_inits`` compiles to the code ``exec`` of
    :func:`values._template_source` gives (the same bytecode, names and constants), and every
    class of the package (all its modules imported) found its ``__init__``'s shape there, so
    that no start-up compiles one."""
    import importlib
    import pkgutil

    import multihome
    from multihome import value_inits

    written = [name for name in vars(value_inits) if name.startswith(("set_", "dict_"))]
    assert written
    for name in written:
        form, count = name.split("_")
        space: dict[str, Any] = {}
        exec(values._template_source(int(count), form == "dict"), {}, space)
        compiled, ours = space["__init__"].__code__, getattr(value_inits, name).__code__
        for attribute in ("co_code", "co_consts", "co_names", "co_varnames", "co_argcount"):
            assert getattr(ours, attribute) == getattr(compiled, attribute), (name, attribute)
    made = []
    for module in pkgutil.walk_packages(multihome.__path__, "multihome."):
        if module.name != "multihome.__main__":
            made += [
                value
                for value in vars(importlib.import_module(module.name)).values()
                if isinstance(value, type) and "__values_fields__" in vars(value)
            ]
    assert len(made) > 40
    compiled_here = [
        cls.__qualname__
        for cls in made
        if cls.__init__.__code__.co_qualname == f"{cls.__qualname__}.__init__"
        and cls.__init__.__code__.co_filename != value_inits.__file__
    ]
    assert not compiled_here, (
        f"{compiled_here} compile their __init__ at start-up: run "
        "`python -m multihome.values --write-inits` (it rewrites multihome/value_inits.py "
        "for the shapes the package uses) and commit the result"
    )


def test_the_written_templates_are_what_write_inits_writes() -> None:
    """``multihome/value_inits.py`` is exactly what ``python -m multihome.values
    --write-inits`` writes now (the shapes the package's classes use, nothing by hand); the
    command without its option says how to call it (exit 2) and writes nothing."""
    from multihome import value_inits

    with open(value_inits.__file__ or "", encoding="utf-8") as handle:
        written = handle.read()
    assert written == values._inits_source(values._shapes_used()), (
        "multihome/value_inits.py is stale: run `python -m multihome.values --write-inits`"
    )
    wrong = subprocess.run(
        [sys.executable, "-m", "multihome.values"], capture_output=True, text=True, check=False
    )
    assert wrong.returncode == 2 and "--write-inits" in wrong.stderr
