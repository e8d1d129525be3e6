"""The local backend, now :mod:`warroom.repository.local`; re-exported for older imports."""

from warroom.repository.local import LocalStorage

__all__ = ["LocalStorage"]
