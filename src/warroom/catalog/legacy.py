"""The catalog left at the old default location, ``./data/catalog.db``.

Earlier versions kept the default catalog in ``./data/catalog.db``, relative to the working
directory, on neither of the seed's volumes. When the catalog is at the new default location
(``$CHECKPOINT_DIR/catalog.db``) and that file does not exist yet, a catalog found at the old
location is moved there (a hard link, then the old name removed: a catalog created there
meanwhile is never overwritten), so it is never shadowed by a new, empty one. When it cannot be
moved (another process has it open, a different file system, no permission), it is used where
it is. Either way the caller is told, in one notice.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from warroom.storage.files import make_dirs, os_reason

__all__ = ["OLD_DEFAULT", "adopt_old_catalog"]

OLD_DEFAULT = Path("data/catalog.db")


def adopt_old_catalog(new: Path, old: Path = OLD_DEFAULT) -> tuple[Path, str | None]:
    """The catalog file to open instead of ``new`` (the default location), and a notice for
    people when the old default was involved (None: nothing to say)."""
    if not old.is_file() or new.exists() and os.path.samefile(old, new):
        return new, None
    if new.exists():
        return new, (
            f"an older catalog is still at {old.resolve()} and is not used: the catalog is "
            f"{new.resolve()}. Remove the old one once you no longer need it."
        )
    if Path(f"{old}-wal").exists():
        return old, (
            f"using the catalog at its old location {old.resolve()}: it looks open in another "
            f"process (its -wal file exists), so it was not moved to {new.resolve()}. Stop "
            "that process and run warroom again to move it, or set WARROOM_CATALOG_URL."
        )
    try:
        make_dirs(new.parent)
        os.link(old, new)
    except FileExistsError:  # created or moved there meanwhile by another process
        return new, None
    except OSError as exc:
        return old, (
            f"using the catalog at its old location {old.resolve()}: it could not be moved to "
            f"{new.resolve()} ({os_reason(exc)}). Move it yourself, or set "
            "WARROOM_CATALOG_URL to keep it there."
        )
    with contextlib.suppress(OSError):  # a name left behind is the same file: no harm
        old.unlink()
        Path(f"{old}-shm").unlink(missing_ok=True)  # stale without a -wal; SQLite makes one
    return new, f"moved the catalog from its old location {old.resolve()} to {new.resolve()}"
