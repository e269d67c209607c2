"""An account's windows as one plain document, the way the peers with a state store of
their own keep it (Quix's ``State``, Bytewax's ``stateful_batch`` logic, Pathway's
stateful reducer):

* ``c``: day-bucket counters, ``"<bucket>|<counter>" -> sum``, as healthscore keeps them;
* ``users`` / ``features``: member -> last seen (epoch s), for the distinct counts;
* ``seen`` event types, ``pub``, the last published tier (the next decision's
  baseline), and ``score``, the last score.

``apply`` adds one event, ``rescore`` sums the windows ending now and scores: a peer
that scores per event calls both per event, one that scores per batch applies the
batch's events and rescores once, as healthscore does.
"""

from __future__ import annotations

from typing import Any

from bench.peers.scoring import Parsed, Scored, Scorer

Doc = dict[str, Any]
SETS = ("users", "features")


def new_doc() -> Doc:
    return {"c": {}, "users": {}, "features": {}, "seen": [], "pub": None, "score": None}


def apply(scorer: Scorer, doc: Doc, event: Parsed, now_bucket: int) -> bool:
    """Add the event to the account's windows; False (and nothing changed) for an event
    older than the longest window, which cannot change a score."""
    if event.bucket < scorer.keep_from(now_bucket):
        return False
    cells: dict[str, float] = doc["c"]
    for counter, delta in event.increments:
        cell = f"{event.bucket}|{counter}"
        cells[cell] = cells.get(cell, 0.0) + delta
    for name, member in event.members:
        last = doc[name]
        if last.get(member, 0.0) < event.ts:  # a late event never moves it back
            last[member] = event.ts
    if event.event_type not in doc["seen"]:
        doc["seen"].append(event.event_type)
    return True


def rescore(
    scorer: Scorer,
    doc: Doc,
    cause: Parsed,
    source: tuple[str, int, int],
    now: float,
    now_bucket: int,
) -> Scored:
    """Prune what left every window, score the windows ending now and keep the result in
    ``doc``; ``cause`` and ``source`` (topic, partition, offset) go into an alert."""
    cells: dict[str, float] = doc["c"]
    sums, stale = scorer.window_sums(cells, now_bucket)
    for cell in stale:
        del cells[cell]
    distinct = {}
    for window in scorer.windows:
        since = scorer.since(now_bucket, window)
        distinct[window] = {
            name: sum(ts >= since for ts in doc[name].values())
            for name in scorer.distinct_at[window]
        }
    keep_since = scorer.since(now_bucket, scorer.model.max_window_buckets)
    for name in SETS:
        doc[name] = {m: ts for m, ts in doc[name].items() if ts >= keep_since}

    scored = scorer.score(cause, scorer.views(sums, distinct), doc["seen"], doc["pub"], source, now)
    doc["score"] = scored.score
    if scored.published is not None:
        doc["pub"] = scored.published
    return scored


def tier(doc: Doc) -> str | None:
    """The tier last published for the account."""
    pub: dict[str, Any] | None = doc["pub"]
    return None if pub is None else str(pub["tier"])
