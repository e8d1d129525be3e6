"""Deployment validation, the deploy pipeline and rollback.

The pipeline runs these stages, each recorded on the deployment checkpoint as it finishes:
validate (stop on failure) → database checkpoint named after the version → tag → deploy
command → health check → done. If the deploy command or the health check fails, the rollback
runs: the rollback command with ``{previous_version}`` substituted, optionally a restore of the
pre-deploy database checkpoint, then the health check again. Deploys and rollbacks hold one
lock across processes, so they never run at the same time.

Each record keeps ``running_version``, the version in service after it: the deployed version
when it succeeded, the previous one after a rollback. "The previous successful version" is read
from that history.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warroom.catalog import Catalog
from warroom.config import Settings
from warroom.database.backups import BackupService
from warroom.deployment.checks import CheckContext, build_checks
from warroom.deployment.runner import CHECKPOINT_TYPE, ValidationReport, git_commit, run_checks
from warroom.errors import InputError, NotFoundError, WarroomError
from warroom.locks import hold_lock
from warroom.notify import Notifier
from warroom.redact import redact_url

__all__ = ["DeploymentService"]

VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
SUCCEEDED, FAILED, ROLLED_BACK, ROLLBACK_FAILED, RUNNING = (
    "succeeded",
    "failed",
    "rolled_back",
    "rollback_failed",
    "running",
)


def _now() -> datetime:
    return datetime.now(UTC)


def check_version(version: str) -> str:
    if not VERSION.fullmatch(version):
        raise InputError(
            f"invalid version {version!r}: 1 to 64 characters, letters, digits and . _ + -, "
            "starting with a letter or digit"
        )
    return version


class DeploymentService:
    """Validate, deploy and roll back, recording each run as a deployment checkpoint."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        backups: BackupService,
        lock_dir: Path,
        workdir: Path | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = _now,
        echo: Callable[[str, dict[str, Any]], None] = lambda stage, values: None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.deployment
        self.catalog = catalog
        self.backups = backups
        self.lock_dir = lock_dir
        self.workdir = workdir or Path.cwd()
        self.environ = dict(os.environ if environ is None else environ)
        self.clock = clock
        self.echo = echo
        self.notifier = notifier or Notifier([])

    # -- validation -------------------------------------------------------------------------

    def validate(self, version: str | None = None, record: bool = True) -> ValidationReport:
        """Run every configured check; record the run unless ``record`` is False."""
        if version is not None:
            check_version(version)
        started, clock = self.clock(), time.monotonic()
        context = CheckContext(
            self.settings,
            self.catalog,
            self.environ,
            started,
            self.workdir,
            self.backups.configured_source,
        )
        results = run_checks(build_checks(self.config), context, self.config.check_timeout)
        report = ValidationReport(
            name=f"validation-{started:%Y%m%dT%H%M%S%fZ}",
            version=version,
            git_commit=git_commit(self.workdir),
            started_at=started,
            duration_seconds=time.monotonic() - clock,
            results=results,
        )
        if record:
            self.catalog.upsert_checkpoint(report.record())
        return report

    # -- history ----------------------------------------------------------------------------

    def _history(self) -> list[str]:
        """Versions that were in service, oldest first (consecutive repeats folded)."""
        versions: list[str] = []
        for record in self.catalog.list_checkpoints(CHECKPOINT_TYPE):
            running = record.details.get("running_version")
            if running and (not versions or versions[-1] != running):
                versions.append(running)
        return versions

    def current_version(self) -> str | None:
        history = self._history()
        return history[-1] if history else None

    # -- deploy -----------------------------------------------------------------------------

    def deploy(self, version: str, command: list[str]) -> ValidationReport:
        """Run the whole pipeline for ``version`` with ``command`` as the deploy command."""
        check_version(version)
        if not command:
            raise InputError("no deploy command: warroom deploy --version V -- COMMAND [ARGS]")
        with hold_lock(self.lock_dir / "deployment.lock", "a deploy or rollback"):
            previous = self.current_version()
            report = self.validate(version, record=False)
            report.name = f"deploy-{version}-{report.started_at:%Y%m%dT%H%M%S%fZ}"
            report.status = RUNNING
            report.extra["previous_version"] = previous
            failed = len(report.blocking)
            self._stage(
                report,
                "validate",
                status="passed" if report.passed else "failed",
                **({"error": f"{failed} check(s) failed"} if failed else {}),
            )
            if not report.passed:
                return self._finish(report, FAILED, previous)
            try:
                self._stage_backup(report, version)
                self._stage_tag(report, version)
            except WarroomError as exc:
                return self._finish(report, FAILED, previous, error=exc.message)
            deployed = self._stage_command(report, "deploy", command) and self._stage_health(
                report, "health"
            )
            if deployed:
                return self._finish(report, SUCCEEDED, version)
            self._untag(report)
            return self._rollback_into(report, previous)

    def rollback(self, to_version: str | None = None) -> ValidationReport:
        """Roll back on demand: to ``to_version``, or the version in service before the
        current one; restore the last deploy's pre-deploy database checkpoint if configured."""
        with hold_lock(self.lock_dir / "deployment.lock", "a deploy or rollback"):
            history = self._history()
            target = to_version or (history[-2] if len(history) > 1 else None)
            if target is None:
                raise NotFoundError(
                    "no earlier successful deployment to roll back to in catalog "
                    f"{self.catalog.location}; pass --to VERSION"
                )
            check_version(target)
            started = self.clock()
            report = ValidationReport(
                name=f"rollback-{target}-{started:%Y%m%dT%H%M%S%fZ}",
                version=target,
                git_commit=git_commit(self.workdir),
                started_at=started,
                duration_seconds=0.0,
                results=[],
                stages={},
                status=RUNNING,
            )
            self._save(report)
            return self._rollback_into(report, target)

    # -- stages -----------------------------------------------------------------------------

    def _save(self, report: ValidationReport) -> None:
        self.catalog.upsert_checkpoint(report.record())

    def _finish(
        self,
        report: ValidationReport,
        status: str,
        running_version: str | None,
        error: str | None = None,
    ) -> ValidationReport:
        report.status = status
        report.duration_seconds = (self.clock() - report.started_at).total_seconds()
        report.extra["running_version"] = running_version
        if error:
            report.extra["error"] = error
        self._save(report)
        if status in (FAILED, ROLLED_BACK, ROLLBACK_FAILED):
            self.notifier.notify(
                "deployment_failed",
                f"deployment {report.name} of {report.version or 'unversioned'}: {status}",
                name=report.name,
                version=report.version,
                status=status,
                error=error,
                stages={k: v.get("status") for k, v in report.stages.items()},
            )
        return report

    def _stage(self, report: ValidationReport, stage: str, **values: Any) -> None:
        report.stages[stage] = values
        self._save(report)
        self.echo(stage, values)

    def _stage_backup(self, report: ValidationReport, version: str) -> None:
        if not self.settings.database_url:
            self._stage(report, "backup", status="skipped", reason="DATABASE_URL is not set")
            return
        name = f"pre-deploy-{version}-{report.started_at:%Y%m%dT%H%M%SZ}"[:128]
        manifest = self.backups.create(name=name)
        self._stage(report, "backup", status="passed", checkpoint=manifest.name)

    def _stage_tag(self, report: ValidationReport, version: str) -> None:
        tag = f"{self.config.deploy.tag_prefix}{version}"
        commit = git_commit(self.workdir)
        if commit is None:
            self._stage(report, "tag", status="passed", tag=tag, git=False)
            return
        existing = subprocess.run(
            ["git", "rev-list", "-n", "1", tag], cwd=self.workdir, capture_output=True, text=True
        )
        created = existing.returncode != 0
        if not created:
            if existing.stdout.strip() != commit:
                self._stage(report, "tag", status="failed", tag=tag, git=True)
                raise InputError(
                    f"git tag {tag} already exists on another commit; deploy a new "
                    "version or delete the tag"
                )
        else:
            made = subprocess.run(
                ["git", "tag", "-a", tag, "-m", f"warroom deploy {version}"],
                cwd=self.workdir,
                capture_output=True,
                text=True,
            )
            if made.returncode != 0:
                self._stage(report, "tag", status="failed", tag=tag, git=True)
                raise InputError(f"cannot create git tag {tag}: {made.stderr.strip()}")
        self._stage(
            report, "tag", status="passed", tag=tag, git=True, commit=commit, created=created
        )

    def _untag(self, report: ValidationReport) -> None:
        """Remove the tag this deploy created: a failed version is not marked deployed."""
        tag = report.stages.get("tag", {})
        if not tag.get("created"):
            return
        removed = subprocess.run(
            ["git", "tag", "-d", tag["tag"]], cwd=self.workdir, capture_output=True, text=True
        )
        self._stage(
            report,
            "untag",
            status="passed" if removed.returncode == 0 else "failed",
            tag=tag["tag"],
            reason=f"removed {tag['tag']}: the deploy failed"
            if removed.returncode == 0
            else f"cannot remove {tag['tag']}: {removed.stderr.strip()}",
        )

    def _stage_command(self, report: ValidationReport, stage: str, command: list[str]) -> bool:
        started = time.monotonic()
        timeout = self.config.deploy.command_timeout
        try:
            done = subprocess.run(
                command, cwd=self.workdir, env=self.environ, stdout=sys.stderr, timeout=timeout
            )
            code: int | None = done.returncode
            problem = None if code == 0 else f"exited with {code}"
        except FileNotFoundError:
            code, problem = None, f"{command[0]!r} was not found"
        except subprocess.TimeoutExpired:
            code, problem = None, f"did not finish within {timeout:g} s"
        self._stage(
            report,
            stage,
            status="passed" if problem is None else "failed",
            command=shlex.join(command),
            exit_code=code,
            error=problem,
            duration_seconds=round(time.monotonic() - started, 3),
        )
        return problem is None

    def _stage_health(self, report: ValidationReport, stage: str) -> bool:
        deploy = self.config.deploy
        if not deploy.health_url:
            self._stage(report, stage, status="skipped", reason="no health_url configured")
            return True
        started, attempts, last = time.monotonic(), 0, ""
        deadline = started + deploy.health_timeout
        while True:
            attempts += 1
            try:
                with urllib.request.urlopen(deploy.health_url, timeout=5) as response:
                    if 200 <= response.status < 300:
                        self._stage(
                            report,
                            stage,
                            status="passed",
                            attempts=attempts,
                            url=redact_url(deploy.health_url),
                            duration_seconds=round(time.monotonic() - started, 3),
                        )
                        return True
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
            if time.monotonic() + deploy.health_interval > deadline:
                break
            time.sleep(deploy.health_interval)
        self._stage(
            report,
            stage,
            status="failed",
            attempts=attempts,
            last_error=last,
            url=redact_url(deploy.health_url),
            duration_seconds=round(time.monotonic() - started, 3),
        )
        return False

    def _rollback_into(self, report: ValidationReport, previous: str | None) -> ValidationReport:
        deploy = self.config.deploy
        ok = True
        if deploy.rollback_command:
            if previous is None and "{previous_version}" in deploy.rollback_command:
                self._stage(
                    report,
                    "rollback",
                    status="failed",
                    error="no previous successful version to roll back to",
                )
                ok = False
            else:
                command = [
                    arg.replace("{previous_version}", previous or "")
                    for arg in shlex.split(deploy.rollback_command)
                ]
                ok = self._stage_command(report, "rollback", command)
        else:
            self._stage(
                report, "rollback", status="skipped", reason="no rollback_command configured"
            )
        if deploy.restore_database:
            ok = self._stage_restore(report) and ok
        if not deploy.rollback_command and not deploy.restore_database:
            # Nothing was undone: the failed version may still be in service.
            return self._finish(
                report,
                FAILED,
                None,
                error="no rollback configured ([deployment.deploy] rollback_command or "
                "restore_database)",
            )
        ok = self._stage_health(report, "rollback_health") and ok
        return self._finish(
            report, ROLLED_BACK if ok else ROLLBACK_FAILED, previous if ok else None
        )

    def _stage_restore(self, report: ValidationReport) -> bool:
        checkpoint = report.stages.get("backup", {}).get("checkpoint") or self._last_pre_deploy()
        if checkpoint is None or not self.settings.database_url:
            self._stage(
                report,
                "restore_database",
                status="failed",
                error="no pre-deploy database checkpoint to restore",
            )
            return False
        try:
            restored = self.backups.restore(
                checkpoint, target_url=self.settings.database_url, confirm=True
            )
        except WarroomError as exc:
            self._stage(
                report,
                "restore_database",
                status="failed",
                checkpoint=checkpoint,
                error=exc.message,
            )
            return False
        self._stage(
            report,
            "restore_database",
            status="passed",
            checkpoint=checkpoint,
            safety_backup=restored.safety_backup,
        )
        return True

    def _last_pre_deploy(self) -> str | None:
        for record in reversed(self.catalog.list_checkpoints(CHECKPOINT_TYPE)):
            checkpoint = record.details.get("stages", {}).get("backup", {}).get("checkpoint")
            if checkpoint:
                return str(checkpoint)
        return None
