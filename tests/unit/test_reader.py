"""The boundary reader: positions and key paths in messages, and hostile YAML and files refused
with one clear InputError (alias bombs, duplicate keys, deep nesting, non-UTF-8, FIFOs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from multihome.config import parse_config
from multihome.errors import ConfigError, ExitCode, InputError
from multihome.reader import (
    MAX_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    SHOWN,
    json_document,
    read_file,
    shown,
    yaml_document,
)

#: Every refusal of a hostile document fits in this many characters.
SHORT = 300


def alias_bomb(levels: int = 9, key: str = "tables:\n  range") -> str:
    """A "billion laughs" document: each level repeats the previous one nine times, so
    ``levels`` levels expand to 9**levels strings; 300 bytes for the default."""
    lines = [f"{key}:", '    - &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"    - &l{level} [" + ",".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_message_names_file_line_column_key_and_fix() -> None:
    """A bad value: FILE:LINE:COL: KEY.PATH: problem; fix, and the parts as attributes."""
    with pytest.raises(InputError) as caught:
        parse_config("primary: eth0\ntables:\n  range: [0, 10]\n", "c.yaml")
    error = caught.value
    assert str(error) == (
        "c.yaml:3:10: tables.range: [0, 10] is out of bounds; use first <= last within "
        "1..4294967295"
    )
    assert (error.source, error.line, error.column, error.path) == ("c.yaml", 3, 10, "tables.range")
    assert error.fix == "use first <= last within 1..4294967295"
    assert error.exit_code == ExitCode.BAD_INPUT


def test_unknown_key_points_at_the_key() -> None:
    """An unknown key is reported where the key is, under the mapping that holds it."""
    with pytest.raises(InputError) as caught:
        parse_config("sysctls:\n  rp_filter: 1\n  tcp_fastopen: 1\n", "c.yaml")
    assert str(caught.value).startswith("c.yaml:3:3: sysctls: unknown key 'tcp_fastopen'; ")


def test_missing_key_points_at_its_mapping() -> None:
    """A required key that is absent is reported at the mapping it belongs in."""
    node = yaml_document("servers:\n  - name: a\n", "t.yaml")
    server = node.mapping()["servers"].seq()[0]
    with pytest.raises(InputError) as caught:
        server.mapping({"name", "image"}, required=("name", "image"))
    assert str(caught.value) == "t.yaml:2:5: servers[0].image: missing; add 'image:' to servers[0]"


def test_config_error_is_input_error() -> None:
    """One class for bad input: the old name is the same class."""
    assert ConfigError is InputError
    assert issubclass(InputError, ValueError)


def test_alias_bomb_is_refused_with_a_short_message() -> None:
    """A 1 KB alias bomb (9**9 strings if expanded) is refused while it is composed, with a
    message of a few lines that names the file and the position (it used to print hundreds
    of megabytes)."""
    text = alias_bomb()
    assert len(text) < 1024
    with pytest.raises(InputError) as caught:
        parse_config(text, "c.yaml")
    message = str(caught.value)
    assert message.startswith("c.yaml:")
    assert f"expands to more than {MAX_NODES} values through aliases" in message
    assert len(message) < SHORT
    assert caught.value.line is not None


def test_alias_bomb_in_a_topology_is_refused_too() -> None:
    """The topology file goes through the same loader."""
    from multihome.cloud.topology import parse_topology

    with pytest.raises(InputError) as caught:
        parse_topology("name: t\n" + alias_bomb(key="networks"), "t.yaml")
    assert "through aliases" in str(caught.value) and len(str(caught.value)) < SHORT


def test_big_values_are_cut_in_messages() -> None:
    """A large value below every limit still gives a short message: quoted values are cut."""
    text = "tables:\n  range: [" + ", ".join(["12345"] * 20_000) + "]\n"
    with pytest.raises(InputError) as caught:
        parse_config(text, "c.yaml")
    assert "is not a range" in str(caught.value) and len(str(caught.value)) < SHORT
    assert len(shown(list(range(100_000)))) <= SHOWN


def test_long_keys_are_cut_in_key_paths() -> None:
    """A huge key is quoted and cut in the key path too, not only in the problem."""
    with pytest.raises(InputError) as caught:
        parse_config("tables:\n  names:\n    ? " + "x" * 100_000 + "\n    : a\n", "c.yaml")
    assert str(caught.value).startswith("c.yaml:3:7: tables.names.'xxx")
    assert len(str(caught.value)) < SHORT


def test_aliases_to_scalars_and_merge_keys_still_work() -> None:
    """Aliases within the limit and merge keys are ordinary YAML and keep working; a merged
    key overridden in the mapping itself is not a duplicate."""
    node = yaml_document("a: &x eth0\nb: *x\nbase: &b {p: 1, q: 2}\nc: {<<: *b, q: 3}\n", "t")
    assert node.value == {"a": "eth0", "b": "eth0", "base": {"p": 1, "q": 2}, "c": {"p": 1, "q": 3}}


def test_duplicate_key_is_refused_with_both_lines() -> None:
    """A key given twice is an error (the last one used to win silently)."""
    with pytest.raises(InputError) as caught:
        parse_config("primary: eth0\nprobe: 192.0.2.1\nprimary: eth1\n", "c.yaml")
    assert str(caught.value) == (
        "c.yaml:3:1: duplicate key 'primary' (first on line 1); keep one of them"
    )


def test_duplicate_nested_key_and_keys_equal_as_text() -> None:
    """Nested mappings are checked too, and so are keys that differ only in YAML type."""
    with pytest.raises(InputError, match=r"^c.yaml:3:3: duplicate key 'range'"):
        parse_config("tables:\n  range: [1, 9]\n  range: [1, 9]\n", "c.yaml")
    with pytest.raises(InputError, match=r"^t:2:1: \(top level\): the key '1' is given twice"):
        yaml_document("1: a\n'1': b\n", "t").mapping()


def test_recursive_alias_is_refused() -> None:
    """An alias inside the collection it names would make an endless structure."""
    with pytest.raises(InputError, match=r"^t:1:11: the alias \*x refers to a collection"):
        yaml_document("a: &x [1, *x]\n", "t")


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "1:68"),
        ("".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "x: 1\n", "64:"),
        ("".join("  " * i + "-\n" for i in range(200)), "65:"),
        ("a: &a " + "[" * 60 + "]" * 60 + "\nb: [[[[[[[[*a]]]]]]]]\n", "2:12"),
    ],
    ids=["flow", "block-mapping", "block-sequence", "through-an-alias"],
)
def test_deep_nesting_is_refused(text: str, where: str) -> None:
    """Nesting deeper than MAX_DEPTH -- written out, or built with an alias -- is an
    InputError with the position (it used to be "internal error: RecursionError")."""
    with pytest.raises(InputError) as caught:
        yaml_document(text, "t.yaml")
    message = str(caught.value)
    assert message.startswith(f"t.yaml:{where}"), message
    assert f"deeper than {MAX_DEPTH} levels" in message
    assert len(message) < SHORT


def test_moderate_nesting_loads() -> None:
    """Ten levels are fine."""
    nested = yaml_document("a: " + "[" * 10 + "]" * 10 + "\n", "t").value
    assert nested == {"a": [[[[[[[[[[]]]]]]]]]]}


def test_malformed_yaml_and_forbidden_characters_have_positions() -> None:
    """Syntax errors and characters YAML forbids name the line and column."""
    with pytest.raises(InputError, match=r"^t:2:1: malformed YAML: .*; fix the syntax"):
        yaml_document("a: [\n", "t")
    with pytest.raises(InputError, match=r"^t:2:4: malformed YAML: character #x0007 is not"):
        yaml_document("a: 1\nb: \x07\n", "t")


def test_non_utf8_file_names_line_and_column(tmp_path: Path) -> None:
    """Bytes that are not UTF-8: the file, the line and column, the byte, and the fix."""
    path = tmp_path / "c.yaml"
    path.write_bytes(b"primary: eth0\nprobe: \xff\n")
    with pytest.raises(InputError) as caught:
        read_file(path, missing_fix="-")
    assert str(caught.value) == (
        f"{path}:2:8: not UTF-8 text (byte 0xff at offset 21); save the file as UTF-8"
    )


def test_fifo_directory_and_oversized_files_are_refused(tmp_path: Path) -> None:
    """A FIFO is refused without waiting for a writer; so are a directory and a huge file."""
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"fifo.yaml: not a regular file \(a FIFO\); give"):
        read_file(fifo, missing_fix="-")
    with pytest.raises(InputError, match=r"not a regular file \(a directory\)"):
        read_file(tmp_path, missing_fix="-")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_BYTES + 1))
    with pytest.raises(InputError, match=rf"is more than the {MAX_BYTES} bytes"):
        read_file(big, missing_fix="-")
    with pytest.raises(InputError, match=r"nope.yaml: no such file; pass one"):
        read_file(tmp_path / "nope.yaml", missing_fix="pass one")


def test_json_document_refusals_end_with_the_remedy() -> None:
    """JSON: duplicate keys, NaN, syntax errors (with line:column) all end with the remedy."""
    for raw, problem in [
        (b'{"a": 1, "a": 2}', "t: duplicate key 'a' in one object; "),
        (b'{"a": NaN}', "t: NaN is not valid JSON; "),
        (b'{\n "a": }', "t:2:7: malformed JSON (Expecting value); "),
    ]:
        with pytest.raises(InputError) as caught:
            json_document(raw, "t", remedy="do X")
        assert str(caught.value) == problem + "do X"


def test_json_nodes_use_json_words_and_the_remedy() -> None:
    """A JSON document's messages speak of objects and strings, and give its one remedy."""
    node = json_document(b'{"links": "x"}', "n.json", remedy="use --source kernel")
    with pytest.raises(InputError) as caught:
        node.mapping()["links"].mapping()
    assert str(caught.value) == (
        "n.json: links: expected an object, got a string; use --source kernel"
    )
