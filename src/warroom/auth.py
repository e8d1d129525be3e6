"""API credentials: opaque bearer tokens stored only as hashes, and platform-signed JWTs.

A token reads ``wr_<id>_<secret>``. The catalog keeps the id, a name, a role and the SHA-256 of
the secret; the token itself is shown once, when it is created. Verification looks the token up
by id and compares the hashes in constant time. JWTs are accepted when configured
(``WARROOM_JWT_SECRET`` for HS256, ``WARROOM_JWT_PUBLIC_KEY`` for RS256), carry the role in
their ``role`` claim and must name this service in their ``aud`` claim (``WARROOM_JWT_AUDIENCE``,
default ``warroom``), so a token minted for another service is refused. Roles nest:
admin ⊃ operator ⊃ viewer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from warroom.catalog import Catalog
from warroom.catalog.schema import api_tokens
from warroom.errors import AuthError, ForbiddenError, InputError, NameTakenError, NotFoundError

__all__ = ["ROLES", "AuthError", "JwtVerifier", "Principal", "TokenStore", "role_allows"]

ROLES = ("viewer", "operator", "admin")
_TOKEN = re.compile(r"^wr_([0-9a-f]{16})_([A-Za-z0-9_-]{20,})$")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's name or a JWT's subject, and a role."""

    name: str
    role: str
    kind: str  # "token" or "jwt"

    def require(self, role: str) -> None:
        if not role_allows(self.role, role):
            raise ForbiddenError(
                f"this needs the {role} role; {self.name} has {self.role}",
                needed=role,
                role=self.role,
            )


def role_allows(have: str, need: str) -> bool:
    return have in ROLES and ROLES.index(have) >= ROLES.index(need)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: str
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class TokenStore:
    """API tokens in the catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def create(self, name: str, role: str) -> tuple[TokenInfo, str]:
        """A new token; returns its info and the token, which is never shown again."""
        if role not in ROLES:
            raise InputError(f"unknown role {role!r}: use viewer, operator or admin")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,199}", name):
            raise InputError(f"invalid token name {name!r}: letters, digits and . _ @ -")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.catalog.transaction() as conn:
            if conn.execute(select(api_tokens.c.id).where(api_tokens.c.name == name)).first():
                raise NameTakenError(
                    f"a token named {name!r} exists; revoke it or pick another name", name=name
                )
            conn.execute(
                api_tokens.insert().values(
                    id=token_id, name=name, role=role, secret_sha256=_hash(secret), created_at=now
                )
            )
        return TokenInfo(token_id, name, role, now, None, None), f"wr_{token_id}_{secret}"

    def list(self) -> list[TokenInfo]:
        with self.catalog.single() as conn:
            rows = conn.execute(select(api_tokens).order_by(api_tokens.c.created_at))
            return [_info(row._mapping) for row in rows]

    def revoke(self, name_or_id: str) -> TokenInfo:
        now = datetime.now(UTC)
        with self.catalog.transaction() as conn:
            row = conn.execute(
                select(api_tokens).where(
                    (api_tokens.c.name == name_or_id) | (api_tokens.c.id == name_or_id)
                )
            ).first()
            if row is None:
                raise NotFoundError(f"no token named {name_or_id!r}")
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == row.id)
                .values(revoked_at=row.revoked_at or now)
            )
        return _info({**row._mapping, "revoked_at": row.revoked_at or now})

    def has_active_admin(self) -> bool:
        return any(t.role == "admin" and t.revoked_at is None for t in self.list())

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token; None otherwise (constant-time compare)."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return None
        token_id, secret = match.groups()
        with self.catalog.single() as conn:
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        expected = row.secret_sha256 if row is not None else _hash("")
        if not hmac.compare_digest(_hash(secret), expected) or row is None or row.revoked_at:
            return None
        with self.catalog.single() as conn:
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .values(last_used_at=datetime.now(UTC))
            )
        return Principal(row.name, row.role, "token")


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        row["id"],
        row["name"],
        row["role"],
        row["created_at"],
        row["last_used_at"],
        row["revoked_at"],
    )


class JwtVerifier:
    """Verifies platform-signed JWTs (HS256 with a shared secret, RS256 with a public key).

    A token is accepted only if it is signed by a configured key, unexpired, has a known
    ``role`` and its ``aud`` claim names ``audience`` (and ``iss`` is ``issuer`` when set)."""

    def __init__(
        self,
        secret: str | None,
        public_key: str | None,
        audience: str,
        issuer: str | None = None,
    ) -> None:
        self._keys: list[tuple[str, Any]] = []
        if secret:
            self._keys.append(("HS256", secret))
        if public_key:
            text = (
                Path(public_key).read_text()
                if not public_key.lstrip().startswith("-----")
                else public_key
            )
            self._keys.append(("RS256", text))
        self.audience, self.issuer = audience, issuer

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def verify(self, token: str) -> Principal | None:
        import jwt

        for algorithm, key in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self.audience,
                    issuer=self.issuer,
                    options={"require": ["exp", "aud", "role"]},
                )
            except jwt.PyJWTError:
                continue
            role = claims.get("role")
            if role not in ROLES:
                return None
            return Principal(str(claims.get("sub") or "jwt"), role, "jwt")
        return None
