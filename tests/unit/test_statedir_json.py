"""The state files' JSON without the json package (multihome.transaction.statedir's
``json_value`` and ``json_text``, on the no-op apply's path) reads and writes exactly what
``json.loads`` and the compact ``json.dumps`` do: compared on generated values and texts."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multihome.transaction.statedir import compose, json_text, json_value

VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN (json reads "NaN" as a float that equals nothing)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@given(VALUES)
def test_json_text_is_the_compact_sorted_json_dumps(value: object) -> None:
    """Any JSON value is written as ``json.dumps(separators=(",", ":"), sort_keys=True)``
    writes it, and read back as ``json.loads`` reads it."""
    text = json_text(value)
    assert text == json.dumps(value, separators=(",", ":"), sort_keys=True)
    assert same(json_value(text), json.loads(text))


@given(VALUES, st.sampled_from(["", " ", "\n", " \t\r\n "]))
def test_json_value_reads_what_json_loads_reads(value: object, blank: str) -> None:
    """Texts as the json package writes them (spaced and indented too), with whitespace
    around: the same value."""
    for text in (json.dumps(value), json.dumps(value, indent=2, sort_keys=True) + "\n"):
        assert same(json_value(blank + text + blank), json.loads(blank + text + blank))


@given(st.text(alphabet=st.sampled_from('{}[]",:0123456789.eE-+ \ntrufalsnNI\\\ufeffx')))
def test_json_value_refuses_what_json_loads_refuses(text: str) -> None:
    """Arbitrary (mostly broken) texts: where json.loads gives a value so does json_value,
    where it raises a ValueError so does json_value."""
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            json_value(text)
        return
    except RecursionError:
        return
    assert same(json_value(text), expected)


def test_a_value_json_cannot_write_is_the_same_error() -> None:
    """What json cannot encode raises the same TypeError with the same words."""
    with pytest.raises(TypeError) as expected:
        json.dumps({"a": {1, 2}}, separators=(",", ":"), sort_keys=True)
    with pytest.raises(TypeError) as found:
        json_text({"a": {1, 2}})
    assert str(found.value) == str(expected.value)


@given(st.dictionaries(st.text(), VALUES, max_size=5))
def test_compose_is_the_text_of_the_object(members: dict[str, object]) -> None:
    """An object put together from its members' texts is the text of the object."""
    texts = {key: json_text(value) for key, value in members.items()}
    assert compose(texts) == json_text(members)
