"""A scenario as bytes: what travels from the HQ to agents, checked by sha256."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cannonade.errors import ScenarioError


@dataclass(frozen=True, slots=True)
class Bundle:
    """A single scenario file (archives of several files come with the HTTP API)."""

    filename: str
    data: bytes
    sha256: str

    @classmethod
    def from_bytes(cls, filename: str, data: bytes) -> Bundle:
        return cls(filename, data, hashlib.sha256(data).hexdigest())

    @classmethod
    def from_path(cls, path: str | Path) -> Bundle:
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise ScenarioError("no such scenario file", str(p)) from None
        except IsADirectoryError:
            raise ScenarioError("is a directory, expected a scenario file", str(p)) from None
        except OSError as e:
            raise ScenarioError(f"cannot read: {e.strerror}", str(p)) from None
        return cls.from_bytes(p.name, data)

    def verify(self) -> None:
        actual = hashlib.sha256(self.data).hexdigest()
        if actual != self.sha256:
            raise ScenarioError(
                f"bundle {self.filename!r} is corrupt: sha256 {actual} != {self.sha256}"
            )
