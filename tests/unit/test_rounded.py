"""``rounded`` is ``round(x, 2)`` to the bit, ties, signed zeros and all."""

from __future__ import annotations

import math
import struct

from hypothesis import example, given
from hypothesis import strategies as st

from worker.scoring.rollup import rounded


def bits(x: float) -> bytes:
    return struct.pack("<d", x)  # tells -0.0 from 0.0, and compares NaNs


@given(st.floats(allow_nan=True, allow_infinity=True))
@example(0.125)  # an exact tie: half to even, 0.12
@example(0.375)
@example(1.005)  # just under a tie as a float: 1.0
@example(2.675)
@example(-0.001)  # -0.0
@example(-0.0)
@example(999_999.995)
@example(1e6)
@example(5e-324)
def test_any_float(x: float) -> None:
    assert bits(rounded(x)) == bits(round(x, 2))


@given(
    st.integers(min_value=-10_000_000, max_value=10_000_000),
    st.integers(min_value=-64, max_value=64),
)
def test_next_to_every_tie(k: int, steps: int) -> None:
    # k + 0.5 hundredths and the floats a few ulps either side: where the product with
    # 100 could round the wrong way.
    x = (k + 0.5) / 100
    for _ in range(abs(steps)):
        x = math.nextafter(x, math.copysign(math.inf, steps))
    assert bits(rounded(x)) == bits(round(x, 2))


@given(st.floats(min_value=-200.0, max_value=200.0))
def test_scores_and_contributions(x: float) -> None:
    assert bits(rounded(x)) == bits(round(x, 2))
