"""Command-line flags of a component, read the way Go's flag packages read them.

``--name=value`` and ``-name=value`` set a value; ``--name value`` too when the next word is not
itself a flag; a bare ``--name`` followed by another flag (or nothing) is a boolean set to
``"true"``. When a flag repeats, the last occurrence wins, as it does for the components.
A lone ``--`` ends the flags. Ambiguity to know about: Go refuses ``--bool-flag false`` (it needs
``=``), so on a real command line that form does not occur; we read the word as the value.
"""

from __future__ import annotations

from collections.abc import Sequence


def flag_values(argv: Sequence[str]) -> dict[str, str]:
    """Map each flag name (without dashes) to its effective value."""
    out: dict[str, str] = {}
    words = list(argv[1:])
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word == "--":
            break
        if not word.startswith("-") or word == "-":
            continue
        name, eq, value = word.lstrip("-").partition("=")
        if not name:
            continue
        if not eq:
            if i < len(words) and not words[i].startswith("-"):
                value = words[i]
                i += 1
            else:
                value = "true"
        out.pop(name, None)  # keep insertion order = order of the effective occurrence
        out[name] = value
    return out


def flag_name(flag: str) -> str:
    """``--profiling`` → ``profiling``."""
    return flag.lstrip("-")
