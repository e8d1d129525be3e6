"""Checkpoint names and secret redaction."""

from __future__ import annotations

import pytest

from warroom.errors import InvalidNameError
from warroom.redact import redact_text, redact_url
from warroom.repository.layout import validate_name


@pytest.mark.parametrize("name", ["a", "db-20261126T030000Z", "pre.migration_2", "x" * 128])
def test_valid_names(name: str) -> None:
    assert validate_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "empty"),
        ("x" * 129, "129 characters"),
        ("../x", "start with"),
        ("a b", "only"),
        (".hidden", "start with"),
        ("a/b", "only"),
        ("-x", "start with"),
        ("é", "start with"),
    ],
)
def test_invalid_names_say_why(name: str, reason: str) -> None:
    with pytest.raises(InvalidNameError, match=reason):
        validate_name(name)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/prod", "postgresql://app@db:5432/prod"),
        ("postgresql://app@db/prod", "postgresql://app@db/prod"),
        ("postgresql://:pw@db/prod", "postgresql://db/prod"),
        (
            "postgresql://db/prod?password=pw&sslmode=require",
            "postgresql://db/prod?password=***&sslmode=require",
        ),
        ("sqlite:////srv/app.db", "sqlite:////srv/app.db"),
        ("postgresql://a:b@db:notaport/x", "<unparseable URL>"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text() -> None:
    assert redact_text("failed for pw=hunter2 hunter2", "hunter2", None, "") == (
        "failed for pw=*** ***"
    )
