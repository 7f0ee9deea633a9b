"""Errors, one base class with a subclass per area.

Only the CLI turns these into messages and exit codes. Messages must name what
failed (the file, layer, registry or repository) and must never contain a
credential or a secret.
"""

from __future__ import annotations


class LayerleakError(Exception):
    """Base class of every error layerleak raises on purpose."""


class UsageError(LayerleakError):
    """The user asked for something that cannot be done (exit 2)."""


class SourceError(LayerleakError):
    """An image source could not be opened or read."""


class ManifestError(SourceError):
    """A manifest, index or config is missing or malformed."""


class RegistryError(SourceError):
    """A registry answered with an error or could not be reached."""


class AuthError(RegistryError):
    """A registry refused the credentials (or their absence)."""


class DaemonError(SourceError):
    """The Docker engine could not be reached or refused a request."""


class LayerError(LayerleakError):
    """A layer could not be read, decompressed or walked."""


class DigestMismatch(LayerError):
    """A blob or uncompressed layer does not hash to its declared digest."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(f"{what}: digest mismatch: expected {expected}, got {actual}")
        self.expected = expected
        self.actual = actual


class SignatureError(LayerleakError):
    """A signature file is malformed or a rule fails its own examples."""


class ConfigError(LayerleakError):
    """An ignore file, baseline or other user configuration is malformed."""
