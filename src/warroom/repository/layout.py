"""The repository's key layout: the one module that spells where an object lives.

Backups, WAL, workflow blobs, keys and locks ask here for their keys and never write a prefix
themselves. The layout is on-disk format: existing repositories (local directories and
buckets) were written with exactly these keys, so they never change (a test pins them)::

    database/<name>/manifest.json     a backup's manifest, written last: the commit point
    database/<name>/<part>            its parts
    database/<name>/checks/<time>.json  its verification records
    wal/<timeline>/<segment>          archived WAL (+ ``.json``: its record)
    wal/history/<timeline>.history    timeline history files (+ ``.json``)
    wal/checks/<random>               ``wal check``'s probe, deleted at once
    wal/restore-points/<name>.json    named restore points
    probes/<random>                   a deployment check's write probe, deleted at once
    workflow/blobs/<sha256>           large workflow step states
    keys/repository.json              says the repository is encrypted, and under which key
    keys/<key id>.json                data keys wrapped by one repository key
    locks/, .locks/                   leases (S3) and flock files (local): not objects

Names of backups (and of their parts) match ``^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$``: one path
segment, never ``.`` or ``..``, refused with InvalidNameError before any key is built.
"""

from __future__ import annotations

import re
from datetime import datetime

from warroom.errors import InvalidNameError

__all__ = [
    "BACKUPS",
    "BLOBS_PREFIX",
    "KEYS_PREFIX",
    "LOCAL_LOCKS",
    "LOCK_PREFIXES",
    "NAME_PATTERN",
    "REPOSITORY_KEY",
    "WAL_PREFIX",
    "backup_prefix",
    "blob_digest",
    "blob_key",
    "check_key",
    "checks_prefix",
    "key_document",
    "key_identity",
    "lease_key",
    "manifest_key",
    "part_key",
    "probe_key",
    "record_key",
    "restore_point_key",
    "validate_name",
    "wal_history_key",
    "wal_name",
    "wal_probe_key",
    "wal_segment_key",
]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # checkpoints and parts

BACKUPS = "database"  # the directory whose children are backup names
WAL_PREFIX = "wal/"
BLOBS_PREFIX = "workflow/blobs/"
KEYS_PREFIX = "keys/"
REPOSITORY_KEY = KEYS_PREFIX + "repository.json"
# Locks live beside the objects (leases on S3, flock files locally); they are not objects.
LEASES, LOCAL_LOCKS = "locks/", ".locks/"
LOCK_PREFIXES = (LEASES, LOCAL_LOCKS)
RECORD_SUFFIX = ".json"


def validate_name(name: str) -> str:
    """Return ``name`` if it may name a checkpoint; raise InvalidNameError saying why not."""
    if not NAME_PATTERN.fullmatch(name):
        reason = (
            "it is empty"
            if not name
            else f"it is {len(name)} characters long (at most 128)"
            if len(name) > 128
            else "it must start with a letter or digit and contain only letters, digits, "
            "'.', '_' and '-'"
        )
        raise InvalidNameError(f"invalid checkpoint name {name!r}: {reason}", name=name)
    return name


# -- backups ---------------------------------------------------------------------------------


def backup_prefix(name: str) -> str:
    """Every object of backup ``name`` is under this prefix (InvalidNameError for a bad name)."""
    return f"{BACKUPS}/{validate_name(name)}/"


def manifest_key(name: str) -> str:
    return backup_prefix(name) + "manifest.json"


def part_key(name: str, part: str) -> str:
    """The key of part ``part`` (a name from a bounded manifest, or written by us)."""
    return backup_prefix(name) + part


def checks_prefix(name: str) -> str:
    return backup_prefix(name) + "checks/"


def check_key(name: str, at: datetime) -> str:
    """The key of the check record of backup ``name`` made at ``at`` (UTC)."""
    return f"{checks_prefix(name)}{at:%Y%m%dT%H%M%S%fZ}.json"


# -- WAL -------------------------------------------------------------------------------------


def wal_segment_key(timeline: str, name: str) -> str:
    """The key of WAL file ``name`` (a segment, .backup or .partial) of ``timeline``."""
    return f"{WAL_PREFIX}{timeline}/{name}"


def wal_history_key(name: str) -> str:
    return f"{WAL_PREFIX}history/{name}"


def record_key(data_key: str) -> str:
    """The key of the JSON record written after the object at ``data_key`` (WAL)."""
    return data_key + RECORD_SUFFIX


def wal_name(key: str) -> str | None:
    """The WAL file name a listed WAL record key stands for; None for any other key."""
    if not key.startswith(WAL_PREFIX) or not key.endswith(RECORD_SUFFIX):
        return None
    return key.rsplit("/", 1)[1][: -len(RECORD_SUFFIX)]


def wal_probe_key(token: str) -> str:
    return f"{WAL_PREFIX}checks/{token}"


def restore_point_key(name: str) -> str:
    return f"{WAL_PREFIX}restore-points/{name}{RECORD_SUFFIX}"


# -- workflow blobs, keys, locks ----------------------------------------------------------------


def blob_key(digest: str) -> str:
    return BLOBS_PREFIX + digest


def blob_digest(key: str) -> str:
    """The digest a listed blob key names (the inverse of :func:`blob_key`)."""
    return key[len(BLOBS_PREFIX) :]


def probe_key(token: str) -> str:
    return f"probes/{token}"


def key_document(identity: str) -> str:
    """The key of the wrapped data keys under repository key ``identity``."""
    return f"{KEYS_PREFIX}{identity}{RECORD_SUFFIX}"


def key_identity(key: str) -> str | None:
    """The repository key id a listed ``keys/`` object holds the data keys of; None for
    ``keys/repository.json`` and anything else."""
    name = key[len(KEYS_PREFIX) :] if key.startswith(KEYS_PREFIX) else ""
    if key == REPOSITORY_KEY or not name.endswith(RECORD_SUFFIX) or "/" in name:
        return None
    return name[: -len(RECORD_SUFFIX)]


def lease_key(file_name: str) -> str:
    return LEASES + file_name
