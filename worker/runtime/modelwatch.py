"""A model file that changes while the worker runs: read again, checked, and used.

The file (or the newest record of the models topic, ``modeltopic``) is read every
``HEALTHSCORE_MODEL_RELOAD_SECONDS`` (and at once on SIGHUP, or when a record arrives);
a change of its bytes is parsed and validated as at start-up. A model that fails (the bad
field named, as ``check-model`` names it) is rejected: logged, counted, and the running
one goes on. One that changes the bucket is rejected too: every window in Redis is kept
per bucket, so a new bucket needs a replay, not a reload.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import NamedTuple

from worker.errors import ConfigError
from worker.metrics import Metrics
from worker.modelfile import model_text
from worker.modelfile.segments import parse_models
from worker.scoring.segments import ModelSet

log = logging.getLogger(__name__)
APPLIED, REJECTED = "applied", "rejected"


class Loaded(NamedTuple):
    models: ModelSet
    fingerprint: str  # SHA-256 of the file's text: what a partition was rescored under


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


Source = Callable[[], tuple[str, str]]  # () -> (a model file's text, its name in errors)


def file_source(path: str) -> Source:
    return lambda: model_text(path)


def load(source: Source) -> Loaded:
    """The model as the worker starts with it."""
    text, name = source()
    return Loaded(parse_models(text, name), fingerprint(text))


class ModelWatch:
    def __init__(self, source: Source, running: Loaded, every: float, metrics: Metrics) -> None:
        """``every``: seconds between reads; 0 reads only when asked (SIGHUP)."""
        self._source = source
        self.running = running
        self._every = every
        self._metrics = metrics
        self._next = time.monotonic() + every
        self._seen = running.fingerprint  # rejected files are not parsed again
        self.asked = False  # SIGHUP: read at the next turn of the loop
        metrics.model_info.labels(running.models.default.version, running.fingerprint).set(1)

    def due(self) -> bool:
        return self.asked or (self._every > 0 and time.monotonic() >= self._next)

    def check(self) -> Loaded | None:
        """A changed, valid model file; None when unchanged or rejected."""
        self.asked = False
        self._next = time.monotonic() + self._every
        try:
            text, source = self._source()
        except (OSError, ConfigError) as exc:
            self._reject(f"cannot read it: {exc}", None)
            return None
        found = fingerprint(text)
        if found == self._seen:
            return None
        self._seen = found
        try:
            models = parse_models(text, source)
        except ConfigError as exc:
            self._reject(str(exc), found)
            return None
        old = self.running.models.default
        if models.default.bucket_seconds != old.bucket_seconds:
            self._reject(
                f"{source}: bucket: cannot change from {old.bucket_seconds} s"
                f" to {models.default.bucket_seconds} s while running (windows"
                " are kept per bucket: replay under the new model)",
                found,
            )
            return None
        return self._apply(Loaded(models, found))

    def _reject(self, why: str, found: str | None) -> None:
        self._metrics.model_reloads.labels(REJECTED).inc()
        log.error(
            "model file rejected, model %s goes on: %s", self.running.models.default.version, why
        )
        if found is None:
            self._seen = ""  # unreadable: read it again next time

    def _apply(self, loaded: Loaded) -> Loaded:
        old = self.running
        self._metrics.model_reloads.labels(APPLIED).inc()
        self._metrics.model_info.clear()
        self._metrics.model_info.labels(loaded.models.default.version, loaded.fingerprint).set(1)
        log.warning(
            "model file changed: %s (%s) replaces %s (%s); rescoring every account",
            loaded.models.default.version,
            loaded.fingerprint,
            old.models.default.version,
            old.fingerprint,
        )
        self.running = loaded
        return loaded
