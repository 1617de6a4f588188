"""Tokens: creating, revoking and recognising them. Tokens are random; only their sha256 is
stored. Reads are public; writes need a token with a scope."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from bench_server.auth import repository as repo
from bench_server.kit.errors import Forbidden, InvalidInput, Unauthorized
from bench_server.models import TOKEN_SCOPES, ApiToken
from bench_server.models.base import utcnow

TOKEN_PREFIX = "bch_"
# `last_used_at` is written when a token is used, at most once per this much time: a token used
# by many requests a second costs one row update a minute, not one per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    id: int
    token: str  # shown once, never stored
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class Principal:
    """Who a request's token says it is."""

    token_id: int
    name: str
    scopes: frozenset[str]
    runner_id: int | None


def create_token(session: Session, name: str, scopes: list[str], runner_id: int | None = None) -> IssuedToken:
    unknown = sorted(set(scopes) - set(TOKEN_SCOPES))
    if not scopes or unknown:
        raise InvalidInput("scopes", f"choose from {', '.join(TOKEN_SCOPES)}; got {unknown or 'none'}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = repo.add_token(
        session,
        ApiToken(
            name=name,
            token_hash=hash_token(token),
            prefix=token[:12],
            scopes=sorted(set(scopes)),
            runner_id=runner_id,
        ),
    )
    return IssuedToken(row.id, token, tuple(row.scopes))


def revoke_token(session: Session, token_id: int) -> bool:
    row = repo.get_token(session, token_id)
    if row is None:
        return False
    row.revoked_at = utcnow()
    return True


def revoke_runner_tokens(session: Session, runner_id: int) -> None:
    repo.revoke_runner_tokens(session, runner_id, utcnow())


def authenticate(session: Session, token: str, accepted: tuple[str, ...]) -> Principal:
    """The principal of a live token holding any of `accepted` scopes (admin is accepted everywhere)."""
    row = repo.token_by_hash(session, hash_token(token))
    if row is None or row.revoked_at is not None:
        raise Unauthorized("unknown or revoked token")
    principal = Principal(row.id, row.name, frozenset(row.scopes), row.runner_id)
    if not principal.scopes & (set(accepted) | {"admin"}):
        raise Forbidden(f"this request needs a token with scope {' or '.join(accepted)}")
    now = utcnow()
    if row.last_used_at is None or _aware(row.last_used_at) <= now - LAST_USED_RESOLUTION:
        row.last_used_at = now  # committed with the request (a refused request leaves it)
    return principal


def _aware(value: datetime) -> datetime:
    # SQLite hands datetimes back without their zone; they were written in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def runner_of(principal: Principal) -> int:
    """The runner a token belongs to; only registered runners' tokens have one."""
    if principal.runner_id is None:
        raise Forbidden("this request needs the token of a registered runner (POST /api/v1/runners/register)")
    return principal.runner_id
