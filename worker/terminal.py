"""Text from input, made safe to print on a terminal.

Attribute values, account ids and alert fields come from producers. Printed as they
are, a ``[/]`` or ``[link=...]`` is rich markup (a crash, or a hyperlink), and an ESC,
CR or LF is the terminal's: colours, a rewritten line, a fake second line. Every
such value goes through ``visible`` and is printed as rich ``Text``, never as markup
(``rich.markup.escape`` is not enough on its own: it depends on what follows the value,
a trailing backslash comes out doubled before anything but a tag).
"""

from __future__ import annotations

import unicodedata

# Control and format characters, surrogates, and the Unicode line and paragraph
# separators: whatever a terminal may act on instead of showing.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(value: object) -> str:
    """``str(value)`` with every control character written out, as ``\\x1b``, ``\\n``."""
    text = str(value)
    if text.isprintable():  # the common case: nothing to do
        return text
    return "".join(_escaped(c) if unicodedata.category(c) in _HIDDEN else c for c in text)


def _escaped(char: str) -> str:
    if (named := _NAMED.get(char)) is not None:
        return named
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
