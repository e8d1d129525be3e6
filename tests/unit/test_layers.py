"""Imports point downwards only (DESIGN.md's layers): a foundation never imports the domain, the
domain never imports a face."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "warroom"
FOUNDATIONS = ("config", "errors", "catalog", "repository", "storage", "codec", "redact", "locks")
DOMAIN = ("workflow", "database", "deployment", "scheduler", "retention", "sources", "cleanup")
FACES = ("cli", "api", "web")
# What app/ wraps: a face asks app/ (or the services it is given), never these directly.
WRAPPED = (*DOMAIN, "catalog", "repository", "storage", "codec", "wal")
# The imports of WRAPPED that faces still make, each with its reason. Keep it short: an entry
# that is no longer needed fails the test too.
FACE_EXCEPTIONS = {
    "cli/app.py": {
        "warroom.database.backups": "Progress: the callback the CLI's progress printer is "
        "given; check_verify_request: --all-copies refused with --restore-test before any file",
        "warroom.repository.layout": "validate_name: a bad name is refused before any file",
        "warroom.database.pitr": "RecoveryTarget, parsed from the --target-* options",
        "warroom.wal": "parse_lsn, checking --target-lsn",
    },
    "cli/deployment.py": {
        "warroom.deployment.junit": "the JUnit reporter, a rendering of the report",
        "warroom.deployment.runner": "ValidationReport, the type the reporters render",
    },
    "cli/selftest.py": {"warroom.workflow": "selftest runs a workflow on its own engine"},
    "cli/workflow.py": {
        "warroom.workflow.loading": "loads the user's AutomationEngine from --app module:engine",
    },
    "cli/worker.py": {
        "warroom.workflow.loading": "loads the user's engine from --app module:engine",
        "warroom.workflow.worker": "the worker loop runs in this process, over the user's engine",
    },
    "api/routes/workflows.py": {
        "warroom.workflow": "the service's app engine (WARROOM_APP) is the user's own",
        "warroom.workflow.loading": "loads WARROOM_APP's engine",
        "warroom.workflow.waits": "LABEL: request bodies check topics and keys as the engine",
    },
    "cli/key.py": {
        "warroom.repository": "key commands act on the repository's keyring itself",
        "warroom.repository.keyring": "key commands act on the repository's keyring itself",
    },
    "cli/repo.py": {"warroom.repository.replication": "repo sync copies between repositories"},
    "cli/service.py": {"warroom.storage.files": "os_reason words a socket's OSError"},
    "cli/wal_fast.py": {
        "warroom.repository": "archive_command's fast path opens the repository, never the catalog",
        "warroom.repository.keyring": "archive_command's fast path reads the encryption keys",
        "warroom.repository.replicas": "archive_command's fast path reads WARROOM_REPLICAS",
        "warroom.wal": "archive_command's fast path writes WAL without the services",
    },
}


def _layer_of(module: str) -> str:
    return module.removeprefix("warroom.").split(".")[0]


def _imports(path: Path, prefix: str = "warroom.") -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == prefix.rstrip(".") or name.startswith(prefix)}


def _modules(top: str) -> list[Path]:
    single = PACKAGE / f"{top}.py"
    return [single] if single.exists() else sorted((PACKAGE / top).rglob("*.py"))


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        (FOUNDATIONS, DOMAIN + FACES + ("app", "services")),
        (DOMAIN, FACES + ("app",)),
    ],
    ids=["foundations", "domain"],
)
def test_imports_point_downwards(layer: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    upward = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for top in layer
        for path in _modules(top)
        for name in _imports(path)
        if _layer_of(name) in forbidden
    ]
    assert upward == []


def test_faces_reach_the_domain_through_the_application_layer() -> None:
    found: dict[str, set[str]] = {}
    for top in FACES:
        for path in _modules(top):
            wrapped = {name for name in _imports(path) if _layer_of(name) in WRAPPED}
            if wrapped:
                found[str(path.relative_to(PACKAGE))] = wrapped
    allowed = {path: set(modules) for path, modules in FACE_EXCEPTIONS.items()}
    unexpected = {path: names - allowed.get(path, set()) for path, names in found.items()}
    stale = {path: names - found.get(path, set()) for path, names in allowed.items()}
    assert {path: names for path, names in unexpected.items() if names} == {}
    assert {path: names for path, names in stale.items() if names} == {}


def test_faces_do_not_query_the_catalog() -> None:
    """SQL is the catalog's: a face that needs a figure asks app/ for it."""
    querying = [
        str(path.relative_to(PACKAGE))
        for top in FACES
        for path in _modules(top)
        if _imports(path, prefix="sqlalchemy.")
    ]
    assert querying == []
