"""The one exception the storage package raises on purpose."""

from __future__ import annotations

from cannonade.errors import CannonadeError


class StorageError(CannonadeError):
    """The database cannot be opened, read or written; the message names the file."""
