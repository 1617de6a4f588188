"""Token creation and lookup. Tokens are random; only their sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bench_server.kit.errors import InvalidInput
from bench_server.models import TOKEN_SCOPES, ApiToken
from bench_server.models.base import utcnow

TOKEN_PREFIX = "bch_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    id: int
    token: str  # shown once, never stored
    scopes: tuple[str, ...]


def create_token(session: Session, name: str, scopes: list[str], runner_id: int | None = None) -> IssuedToken:
    unknown = sorted(set(scopes) - set(TOKEN_SCOPES))
    if not scopes or unknown:
        raise InvalidInput("scopes", f"choose from {', '.join(TOKEN_SCOPES)}; got {unknown or 'none'}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        token_hash=hash_token(token),
        prefix=token[:12],
        scopes=sorted(set(scopes)),
        runner_id=runner_id,
    )
    session.add(row)
    session.flush()
    return IssuedToken(row.id, token, tuple(row.scopes))


def find_token(session: Session, token: str) -> ApiToken | None:
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    return row


def revoke_token(session: Session, token_id: int) -> bool:
    row = session.get(ApiToken, token_id)
    if row is None:
        return False
    row.revoked_at = utcnow()
    return True
