"""The configuration example the Debian package installs as /etc/multihome/config.yaml
(examples/config.yaml): as shipped (every setting commented out) it is the defaults, and with
every setting uncommented it says the defaults again -- so the values it shows are true."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from multihome.config import Config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "config.yaml"
#: A commented-out setting: "#key: ..." or "#  key: ..." (prose is "# Words").
_SETTING = re.compile(r"^#(\S|  )")


def test_as_shipped_it_is_the_defaults() -> None:
    """Every line a comment: the defaults (nothing set by the file)."""
    config = parse_config(EXAMPLE.read_text(), str(EXAMPLE))
    assert replace(config, source="") == replace(Config(), source="")


def test_uncommented_it_says_the_defaults() -> None:
    """The commented-out settings, uncommented (all but the examples of `primary` and
    `interfaces`, which are not defaults), parse and equal the defaults."""
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("#primary") or line.startswith(("#interfaces", "#  include", "#  ex")):
            continue
        lines.append(line[1:] if _SETTING.match(line) else line)
    text = "\n".join(lines) + "\n"
    assert "tables:\n  range: [10000, 10999]" in text and "probe: 198.51.100.10" in text
    config = parse_config(text, "uncommented")
    assert replace(config, source="") == replace(Config(), source="")
