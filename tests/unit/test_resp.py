"""Requests packed by ``resp`` are byte for byte what hiredis packs, for every argument type."""

from __future__ import annotations

from collections.abc import Callable

import hiredis
from hypothesis import given
from hypothesis import strategies as st

from worker.windows import resp

ARGS = st.one_of(
    st.text(),
    st.binary(max_size=1200),  # past the table of ready-made length lines
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.integers(min_value=0, max_value=1100),  # around the table of small numbers
)
COMMANDS = st.lists(st.lists(ARGS, min_size=1, max_size=80), max_size=5)


def _hiredis(commands: list[list[resp.Arg]]) -> bytes:
    return b"".join(hiredis.pack_command(tuple(c)) for c in commands)  # type: ignore[arg-type]


def _outcome(
    pack: Callable[[list[list[resp.Arg]]], bytes], commands: list[list[resp.Arg]]
) -> bytes | type[Exception]:
    try:
        return pack(commands)
    except TypeError as exc:
        return type(exc)


@given(COMMANDS)
def test_a_request_is_packed_as_hiredis_packs_it(commands: list[list[resp.Arg]]) -> None:
    # A bool is refused by both: no Redis command takes one.
    assert _outcome(resp.pack, commands) == _outcome(_hiredis, commands)


def test_a_script_call_with_packed_binary_arguments() -> None:
    call: list[resp.Arg] = [
        "EVALSHA",
        "ab" * 20,
        2,
        "hs:{a}:c",
        "hs:{a}:s",
        1796275470,
        0.25,
        "é",
        b"\x00\r\n\xff",
        -3,
    ]
    assert resp.pack([call, ("PING",)]) == _hiredis([call, ["PING"]])


def test_nothing_to_send_is_an_empty_buffer() -> None:
    assert resp.pack([]) == b""
