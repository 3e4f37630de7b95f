"""What every endpoint needs: where the database is, the board shared with the HQ
thread, and the API's settings. One per app; no module-level state."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import HTTPException

from cannonade.errors import CannonadeError
from cannonade.service.board import Board
from cannonade.service.worker import bundle_kind
from cannonade.storage import BundleRecord, Store

DEFAULT_MAX_UPLOAD = 10 * 1024 * 1024  # a bundle travels in a 16 MiB frame, base64-encoded


@dataclass(frozen=True, slots=True)
class ApiConfig:
    db: Path
    token: str | None = None
    allow_exec: bool = False
    max_upload: int = DEFAULT_MAX_UPLOAD


@dataclass(frozen=True, slots=True)
class Api:
    config: ApiConfig
    board: Board

    @contextmanager
    def store(self) -> Iterator[Store]:
        # SQLite connections belong to one thread, and FastAPI runs each sync endpoint
        # on a worker thread: each request opens its own (a file open, ~1 ms).
        with Store.open(self.config.db) as store:
            yield store

    def save_bundle(self, filename: str, data: bytes) -> BundleRecord:
        """Store an upload; raises HTTPException 400/403 with the reason."""
        name = Path(filename or "").name
        if not name or name.startswith("."):
            raise HTTPException(400, "the uploaded file needs a plain file name")
        if not data:
            raise HTTPException(400, "the uploaded file is empty")
        try:
            kind = bundle_kind(name, data)
        except CannonadeError as e:
            raise HTTPException(400, str(e)) from None
        if kind == "exec" and not self.config.allow_exec:
            raise HTTPException(
                403, "executable bundles are refused: start the HQ with --allow-exec to run them"
            )
        with self.store() as store:
            return store.put_bundle(
                secrets.token_hex(16), filename=name, kind=kind, data=data, created=time.time()
            )
