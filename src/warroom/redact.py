"""Keeping secrets out of logs, manifests, API responses and error messages."""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

__all__ = ["redact_text", "redact_url", "url_password"]


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    return parts


def url_password(url: str) -> str | None:
    parts = _split(url)
    return parts.password if parts else None


def redact_url(url: str) -> str:
    """``url`` without its password (``postgresql://app@db:5432/prod``); query secrets too."""
    parts = _split(url)
    if parts is None or "://" not in url:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{host}" if user else host
    query = "&".join(
        f"{key}=***" if key.lower() in ("password", "sslpassword") else f"{key}={value}"
        for key, _, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    # Built by hand: urlunsplit drops the empty host of sqlite:////abs/path.
    return f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")


def redact_text(text: str, *secrets: str | None) -> str:
    """Replace every occurrence of each non-empty secret in ``text`` with ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
