"""The OpenAPI document of the account API, as committed in ``docs/openapi.json``.

Regenerate after changing the API: ``python -m worker.api.openapi > docs/openapi.json``.
Built for the packaged default model (the tier names are the model's).
"""

from __future__ import annotations

import sys
from typing import Any

import orjson
from redis.asyncio import Redis

from worker.api.app import create_app
from worker.modelfile import load_model


def document() -> dict[str, Any]:
    # A client that never connects: building the document reads nothing.
    app = create_app(load_model(""), Redis())
    return app.openapi()


def text() -> str:
    return (
        orjson.dumps(document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
    )


if __name__ == "__main__":
    sys.stdout.write(text())
