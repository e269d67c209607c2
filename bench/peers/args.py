"""The command line every peer takes from ``bench.peers.run``.

Topics, bootstrap servers and the Redis URL come from the ``HEALTHSCORE_*``
environment (``Settings.from_env``), the way healthscore itself is configured;
these arguments are what differs between the peers of one run.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerArgs:
    result: str  # where the peer writes its measurement (JSON)
    group: str  # its own consumer group, so it reads every event from the start
    output_topic: str  # where tier-change alerts go
    expect: int  # events in the topics: the last one is reported at once
    data_dir: str  # the framework's own files (faust datadir, Quix state dir)
    key_prefix: str  # Redis keys of this run only
    scores: str | None  # where to write each account's final score and tier (JSON), if set
    recovery: bool = False  # the framework's own state recovery on (Bytewax), in data_dir


def parse(description: str, argv: Sequence[str] | None = None) -> PeerArgs:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--result", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--key-prefix", default="peer")
    parser.add_argument("--scores")
    parser.add_argument("--recovery", action="store_true")
    ns = parser.parse_args(argv)
    return PeerArgs(
        ns.result,
        ns.group,
        ns.output_topic,
        ns.expect,
        ns.data_dir,
        ns.key_prefix,
        ns.scores,
        ns.recovery,
    )
