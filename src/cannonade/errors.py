"""The exceptions cannonade raises, one tree.

    CannonadeError
    ├── ConfigError          a command-line option, file or field is wrong (names which)
    ├── ScenarioError        a scenario cannot be loaded or is malformed (file:line)
    ├── ThresholdError       a threshold expression cannot be parsed
    ├── ProtocolError        bytes from a peer do not decode into a known message
    └── TargetError          the embedded target could not start

Errors inside a virtual user's iteration are not raised through the engine: they are
recorded as measurements (see ``cannonade.model``), so nothing a target does can stop a run.
"""

from __future__ import annotations


class CannonadeError(Exception):
    """Base of every error cannonade raises on purpose."""


class ConfigError(CannonadeError):
    """A setting is invalid; the message names the option, file or field."""


class ScenarioError(CannonadeError):
    """A scenario is invalid. ``where`` is ``file:line`` when it is known."""

    def __init__(self, message: str, where: str | None = None) -> None:
        self.where = where
        self.reason = message
        super().__init__(f"{where}: {message}" if where else message)


class ThresholdError(ConfigError):
    """A threshold expression is malformed."""


class ProtocolError(CannonadeError):
    """A message from a peer is malformed; decoders raise only this."""


class TargetError(CannonadeError):
    """The embedded target failed to start."""


class PluginError(CannonadeError):
    """A plugin cannot be installed, found or loaded; the message names the plugin."""
