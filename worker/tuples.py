"""Named tuples built in C, for the ones the hot path makes per event or per account.

A named tuple's own constructor is a Python function (``collections.namedtuple``
writes one per class): compiled code calling it still runs an interpreted frame,
about 11k instructions for ``AccountState``'s 18 fields. ``make(Cls, (values...))``
is ``tuple.__new__``: the values in field order, every one given (defaults are not
filled in), no Python frame.
"""

from __future__ import annotations

make = tuple.__new__
