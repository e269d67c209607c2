"""The bound on an account's distinct sets (users, features): at most
``cap`` members each, so one huge account cannot grow without limit in Redis or
in the worker's memory.

Decided in the worker, from the account it holds (which has every member Redis has,
the account being maintained by its first call in every bucket): the script just
adds what it is given, with no extra command. Members already tracked keep their
last-seen times; new ones beyond the cap are not tracked, so distinct counts become
lower bounds. The latest time of such a member is remembered per set: a window that
reaches back to it has a count that may be short (``WindowView.capped``).
"""

from __future__ import annotations

from worker.windows.plan import Totals


def admit(totals: Totals, last_seen: dict[str, dict[str, float]], cap: int) -> Totals:
    """``totals`` with only the members there is room for: those already tracked in
    ``last_seen``, then new ones in the order their events came, up to ``cap``."""
    dropped: dict[str, tuple[int, float]] = {}
    members = totals.members
    for name, latest in members.items():
        held = last_seen[name]
        if len(held) + len(latest) <= cap:
            continue  # the usual case: room for all of them even if all are new
        room = cap - len(held)
        kept: dict[str, float] = {}
        n_dropped, newest = 0, 0.0
        for member, ts in latest.items():
            if member in held:
                kept[member] = ts
            elif room > 0:
                kept[member] = ts
                room -= 1
            else:
                n_dropped += 1
                newest = max(newest, ts)
        if n_dropped:
            if members is totals.members:
                members = dict(members)  # never change the plan's own sums
            members[name] = kept
            dropped[name] = (n_dropped, newest)
    if not dropped:
        return totals
    return Totals(totals.counters, members, dropped)
