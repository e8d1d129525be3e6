"""How warroom creates the files and directories that hold its data: the repository's objects,
its lock files, and a SQLite catalog (whose ``-wal``/``-shm`` files SQLite creates with the
catalog's own mode).

Private by default: files 0600, directories 0700. With ``WARROOM_SHARED_GROUP=<group>`` they
are shared with that group instead, for a repository that the service's user and PostgreSQL's
OS user (running ``wal push``) both write, both members of the group: directories 2770 owned by
the group (setgid, so what is created inside inherits the group), data files 0640 (written once
and renamed into place; removing one needs only its directory), and files that several
processes open for writing (locks, the catalog) 0660. Directories that already exist (the one
``BACKUP_DIR`` names, say) are left as they are.

The setting is read from the environment when a file is created, not from :class:`Settings`:
``wal push``, which PostgreSQL runs with the environment of ``archive_command`` and without
loading the settings, creates files too and must create them the same way as the service.

Every failure is a :class:`~warroom.errors.StorageError` naming the path and saying why in
words (the disk is full, the file system is read-only, permission denied).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import NamedTuple

from warroom.errors import ConfigurationError, StorageError

__all__ = ["Modes", "make_dirs", "modes", "open_new", "os_reason", "storage_error"]

SHARED_GROUP_VARIABLE = "WARROOM_SHARED_GROUP"

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}


class Modes(NamedTuple):
    """The modes (and group) new files and directories get."""

    directory: int
    file: int
    shared_file: int  # opened for writing by several processes: locks, the catalog
    gid: int | None


PRIVATE = Modes(directory=0o700, file=0o600, shared_file=0o600, gid=None)


def modes() -> Modes:
    """The current policy: private, or shared with the group ``WARROOM_SHARED_GROUP`` names."""
    name = os.environ.get(SHARED_GROUP_VARIABLE, "").strip()
    if not name:
        return PRIVATE
    import grp

    try:
        gid = grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigurationError(
            f"{SHARED_GROUP_VARIABLE}={name!r} is not a group on this host; name an existing "
            "group that the service's user and PostgreSQL's user belong to, or unset it"
        ) from None
    return Modes(directory=0o2770, file=0o640, shared_file=0o660, gid=gid)


def os_reason(exc: OSError) -> str:
    """Why ``exc`` happened, in words; for permissions, also as whom."""
    reason = _REASONS.get(exc.errno or 0) or exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        import pwd

        try:
            reason += f" (running as {pwd.getpwuid(os.geteuid()).pw_name})"
        except KeyError:
            reason += f" (running as uid {os.geteuid()})"
    return reason


def storage_error(action: str, path: Path | str, exc: OSError) -> StorageError:
    """``cannot <action> <path>: <reason>``, with the path in the details."""
    return StorageError(f"cannot {action} {path}: {os_reason(exc)}", path=str(path))


def _apply(path: Path, mode: int, policy: Modes, fd: int | None = None) -> None:
    """Give a new file or directory ``mode`` exactly (whatever the umask) and the group."""
    target: Path | int = path if fd is None else fd
    if policy.gid is not None:
        os.chown(target, -1, policy.gid)
    os.chmod(target, mode)


def make_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents with the policy's directory mode."""
    policy = modes()
    missing = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            if directory.is_dir():
                continue  # created meanwhile by another process
            raise StorageError(
                f"cannot create directory {directory}: a file of that name is in the way",
                path=str(directory),
            ) from None
        except OSError as exc:
            raise storage_error("create directory", directory, exc) from exc
        try:
            _apply(directory, policy.directory, policy)
        except OSError as exc:
            raise storage_error("set the mode of directory", directory, exc) from exc


def open_new(path: Path, *, shared: bool = False, exist_ok: bool = False) -> int:
    """Create ``path`` (its directory must exist) with the policy's mode and open it for
    reading and writing; ``shared`` for files several processes write (locks, the catalog).
    With ``exist_ok`` an existing file is opened as it is; otherwise it is an error."""
    policy = modes()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        if not exist_ok:
            raise
        try:
            return os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise storage_error("open", path, exc) from exc
    except OSError as exc:
        raise storage_error("create", path, exc) from exc
    try:
        _apply(path, policy.shared_file if shared else policy.file, policy, fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise storage_error("set the mode of", path, exc) from exc
    return fd
