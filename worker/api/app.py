"""The account API's routes, built by ``create_app`` around an injected Redis client.

No ``from __future__ import annotations`` here: FastAPI reads the routes'
annotations at runtime, and the tier pattern is the model's, built in the factory.
"""

import hmac
import logging
import re
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.exceptions import RedisError

from worker.api import listing, models
from worker.clock import Clock, WallClock
from worker.explain import Explanation, explain
from worker.scoring.model import UNKNOWN_TIER, Model
from worker.scoring.segments import ModelSet, as_model_set, model_name
from worker.settings import Settings
from worker.windows.store import WindowStore
from worker.windows.wire import Client

log = logging.getLogger(__name__)

VERSION = "1"
ACCOUNT_ID_PATTERN = "^[A-Za-z0-9._:@-]{1,128}$"
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": models.Error, "description": "A token is set and the request lacks it."},
    503: {"model": models.Error, "description": "Redis did not answer."},
}


def create_app(
    model: Model | ModelSet,
    redis: Client,
    *,
    token: str = "",
    clock: Clock | None = None,
    settings: Settings | None = None,
) -> FastAPI:
    """The API over ``redis`` for ``model``. ``token``: when set, every request must
    carry ``Authorization: Bearer <token>``. ``settings``: the worker's (distinct bound,
    Redis timeout); the defaults without."""
    app = FastAPI(
        title="healthscore account API",
        version=VERSION,
        description="Customer health scores, tiers and the model that computes them, read"
        " live from the workers' Redis.",
        dependencies=[Depends(_authorizer(token))],
        responses=ERRORS,
    )
    model_set = as_model_set(model)
    store = WindowStore.from_settings(redis, model_set.windows, settings or Settings())
    clock = clock or WallClock()
    tiers = [*dict.fromkeys(t.name for m in model_set.all() for t in m.tiers), UNKNOWN_TIER.name]
    tier_pattern = "^(" + "|".join(re.escape(t) for t in tiers) + ")$"
    _handle_errors(app)

    @app.get(
        "/accounts/{account_id}",
        response_model=models.Account,
        dependencies=[Depends(_only_query())],
        responses={404: {"model": models.Error, "description": "Unknown account."}},
        summary="One account's score, tier and components, now",
    )
    async def get_account(
        account_id: Annotated[
            str, Path(pattern=ACCOUNT_ID_PATTERN, description="The account's id.")
        ],
    ) -> models.Account:
        result = await explain(store, model_set, account_id, clock)
        if not result.known:
            raise HTTPException(404, f"unknown account: {account_id}")
        return _account(result)

    @app.get(
        "/accounts",
        response_model=models.AccountPage,
        dependencies=[Depends(_only_query("tier", "segment", "cursor", "limit"))],
        summary="Accounts by published tier, paged by account id",
    )
    async def list_accounts(
        tier: Annotated[
            str,
            Query(pattern=tier_pattern, description=("Published tier: " + ", ".join(tiers) + ".")),
        ],
        segment: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=64,
                description=("Only accounts whose segment attribute is this."),
            ),
        ] = None,
        cursor: Annotated[
            str | None,
            Query(
                max_length=200,
                pattern=listing.CURSOR_PATTERN,
                description=("`next_cursor` of the page before; absent: the first page."),
            ),
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=500, description=("Most accounts in the page."))
        ] = 100,
    ) -> models.AccountPage:
        after = None if cursor is None else listing.decode_cursor(cursor)
        rows, next_cursor = await listing.page(redis, tier, segment, after, limit)
        return models.AccountPage(
            accounts=[models.AccountSummary(**r._asdict()) for r in rows], next_cursor=next_cursor
        )

    @app.get(
        "/model",
        response_model=models.ScoringModel,
        summary="The running model",
        dependencies=[Depends(_only_query())],
    )
    async def get_model() -> models.ScoringModel:
        return _model(model_set.default).model_copy(
            update={"segments": [_model(m) for m in model_set.segments.values()]}
        )

    return app


def _only_query(*names: str) -> Any:
    """A query parameter the route does not know, or one given twice, is refused (422),
    not ignored: a typo such as ``segmnet=smb`` would otherwise list every segment, and
    of ``tier=red&tier=green`` one would be dropped unsaid."""

    async def check(request: Request) -> None:
        query = request.query_params
        errors = [
            {
                "type": "extra_forbidden",
                "loc": ("query", name),
                "msg": "unknown query parameter",
                "input": query[name],
            }
            for name in sorted(set(query) - set(names))
        ]
        errors += [
            {
                "type": "too_long",
                "loc": ("query", name),
                "msg": "given more than once",
                "input": query.getlist(name),
            }
            for name in sorted(set(query) & set(names))
            if len(query.getlist(name)) > 1
        ]
        if errors:
            raise RequestValidationError(errors)

    return check


def _authorizer(token: str) -> Any:
    bearer = HTTPBearer(auto_error=False, description="Set by HEALTHSCORE_API_TOKEN.")

    async def authorize(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if not token:
            return
        given = "" if credentials is None else credentials.credentials
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"}
            )

    return authorize


def _handle_errors(app: FastAPI) -> None:
    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "%s %s: Client: %s: %s", request.method, request.url.path, type(exc).__name__, exc
        )
        return JSONResponse({"detail": "Redis did not answer"}, status_code=503)

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_exception_handler(RedisError, unavailable)
    app.add_exception_handler(TimeoutError, unavailable)
    app.add_exception_handler(Exception, internal)


def _account(result: Explanation) -> models.Account:
    data = result.as_dict()
    published = result.published
    return models.Account(
        account_id=data["account_id"],
        at=data["at"],
        model_version=data["model_version"],
        segment_model=data["model"]["segment"],
        segment=data["segment"],
        attributes=data["attributes"],
        score=data["score"],
        tier=data["tier"],
        published_tier=data["published_tier"],
        last_alert=None
        if published is None
        else models.LastAlert(seq=published.seq, tier=published.tier, score=published.score),
        components=[models.Component(**c) for c in data["components"]],
        last_events=result.last_events(),
        override=None if data["override"] is None else models.AccountOverride(**data["override"]),
        override_history=[models.AccountOverride(**o) for o in data["override_history"]],
        recovery=None if data["recovery"] is None else models.Recovery(**data["recovery"]),
    )


def _model(model: Model) -> models.ScoringModel:
    return models.ScoringModel(
        version=model.version,
        bucket_seconds=model.bucket_seconds,
        margin=model.margin,
        tiers=[models.Tier(name=t.name, label=t.label, min_score=t.min_score) for t in model.tiers],
        components=[
            models.ModelComponent(
                name=c.name,
                description=c.description,
                signal=c.signal.name,
                window_seconds=c.window_buckets * model.bucket_seconds,
                weight=c.weight,
                trend=c.trend,
            )
            for c in model.components
        ],
        segment=model_name(model),
    )
