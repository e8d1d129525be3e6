"""API tokens (``warroom token``, ``/api/v1/tokens`` and the web UI's admin screen): create
(the secret shown once), list, revoke."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from warroom.auth import TokenInfo
from warroom.services import Services

__all__ = ["CreatedToken", "TokenList", "create_token", "list_tokens", "revoke_token"]


@dataclass(frozen=True)
class CreatedToken:
    """A new token's info and its secret, which is never shown again."""

    info: TokenInfo
    token: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.info.to_dict(), "token": self.token}


@dataclass(frozen=True)
class TokenList:
    """Every token (never a secret), oldest first, revoked ones included."""

    tokens: list[TokenInfo]

    def to_dict(self) -> dict[str, Any]:
        return {"tokens": [info.to_dict() for info in self.tokens]}


def create_token(services: Services, *, name: str, role: str) -> CreatedToken:
    """A new token for ``name`` with ``role`` (InputError for an unknown role or a bad name,
    NameTakenError when the name is in use)."""
    info, token = services.tokens.create(name, role)
    return CreatedToken(info, token)


def list_tokens(services: Services) -> TokenList:
    return TokenList(services.tokens.list())


def revoke_token(services: Services, name_or_id: str) -> TokenInfo:
    """Revoke by name or id (NotFoundError when none); revoking twice keeps the first time."""
    return services.tokens.revoke(name_or_id)
