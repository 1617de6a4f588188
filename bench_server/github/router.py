"""`POST /api/v1/github/webhook`: the signature is checked on the raw bytes before anything is
parsed or stored; the payload is validated (a wrong shape is a 422 naming the field);
deliveries are de-duplicated by `X-GitHub-Delivery` and by the event they carry."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from bench_server.github.schemas import PullRequestEvent, PushEvent
from bench_server.github.service import handle_event
from bench_server.github.signature import verify
from bench_server.kit.deps import AppCtx, DbSession
from bench_server.kit.errors import AppError, InvalidFields, Unauthorized
from bench_server.kit.openapi import ErrorOut, error_responses

router = APIRouter(tags=["github"])

HANDLED_EVENTS = ("push", "pull_request")


@router.post(
    "/github/webhook",
    responses={
        200: {"description": "ping answered, or a delivery already handled"},
        202: {"description": "accepted: a run was queued, or the event is ignored"},
        **error_responses(400, 413, 422),
        401: {"model": ErrorOut, "description": "missing or wrong X-Hub-Signature-256"},
    },
)
async def github_webhook(request: Request, session: DbSession, ctx: AppCtx) -> Any:
    body = await request.body()
    secret = ctx.settings.github_webhook_secret.get_secret_value()
    if not verify(secret, body, request.headers.get("x-hub-signature-256")):
        raise Unauthorized("X-Hub-Signature-256 is missing or does not match the body")
    event = request.headers.get("x-github-event", "")
    delivery = request.headers.get("x-github-delivery", "").strip()
    if event == "ping":
        return JSONResponse({"status": "pong", "event": "ping"}, status_code=200)
    if event not in HANDLED_EVENTS:
        return JSONResponse(
            {"status": "ignored", "event": event, "detail": "event not handled"}, status_code=202
        )
    if not delivery or len(delivery) > 100:
        raise AppError("X-GitHub-Delivery header is required", code="bad_request")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise AppError(f"body is not JSON: {exc}", code="bad_request") from exc
    if not isinstance(payload, dict):
        raise AppError("body is not a JSON object", code="bad_request")
    model = PushEvent if event == "push" else PullRequestEvent
    try:
        parsed = model.model_validate(payload)
    except ValidationError as exc:
        raise InvalidFields(exc) from exc

    outcome = await run_in_threadpool(handle_event, session, ctx, delivery, parsed)
    return JSONResponse(
        {
            "status": outcome.status,
            "event": event,
            "delivery": delivery,
            "run_id": outcome.run_id,
            "detail": outcome.detail,
        },
        status_code=200 if outcome.status == "duplicate" else 202,
    )
