"""Commands packed as Redis requests (RESP: ``*<count>``, then ``$<length>`` and the bytes of
each argument, every line ended by CRLF), for the hot path's exchanges (``exchange``).

hiredis packs in C, but per argument it copies the bytes into a string of its own and
formats the length with ``sprintf``: a batch's commands took a sixth of the worker's
instructions to pack. Here an argument costs a list append or three, the lengths of
short arguments (and small numbers whole) come from tables, and one join copies it all once (compiled, see
``worker.compiled``). Numbers are written as ``str()`` writes them, as hiredis does.
"""

from __future__ import annotations

from collections.abc import Sequence

Arg = str | bytes | int | float
Command = Sequence[Arg]

CRLF = b"\r\n"
# "$<length>\r\n" for the lengths most arguments have: made once, not per argument.
_LENGTHS = [b"$%d\r\n" % n for n in range(512)]
_COUNTS = [b"*%d\r\n" % n for n in range(64)]
# Small whole numbers (counts, flags), each a whole argument ready to send.
_SMALL = [b"$%d\r\n%d\r\n" % (len(str(n)), n) for n in range(1024)]


def pack(commands: Sequence[Command]) -> bytes:
    """``commands`` as one request buffer, in order."""
    parts: list[bytes] = []
    lengths, counts = _LENGTHS, _COUNTS
    for command in commands:
        n = len(command)
        parts.append(counts[n] if n < len(counts) else b"*%d\r\n" % n)
        for arg in command:
            if isinstance(arg, int) and 0 <= arg < 1024 and not isinstance(arg, bool):
                parts.append(_SMALL[arg])
                continue
            data = _bytes(arg)
            size = len(data)
            parts.append(lengths[size] if size < len(lengths) else b"$%d\r\n" % size)
            parts.append(data)
            parts.append(CRLF)
    return b"".join(parts)


def _bytes(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, bool):  # refused, as hiredis refuses it: True is no Redis value
        raise TypeError(f"a command argument cannot be a bool ({arg})")
    return str(arg).encode()  # an int or a float, written as hiredis writes it
