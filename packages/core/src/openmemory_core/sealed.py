"""Secrets at rest: model API keys saved from the dashboard are sealed (AES-256-GCM) before they are
stored in NATS KV, and bound to the URL they were saved with.

The URL is the seal's associated data, so a sealed key opens only for that very URL: whoever changes
the base URL later cannot have the key sent to a server of theirs. The sealing key is
`OPENMEMORY_SECRETS_KEY` (32 bytes, URL-safe base64; the same on every process of a split
deployment), else `<data dir>/secrets.key`, made on first use with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from openmemory_core.errors import ConfigurationError
from openmemory_core.settings import CoreSettings

log = logging.getLogger(__name__)

KEY_FILE = "secrets.key"
_VERSION = "v1:"


class Sealer:
    """Seals and opens short secrets, each bound to a context string (a URL)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigurationError("the secrets key must be 32 bytes (URL-safe base64 of 32 random bytes)")
        self._aead = AESGCM(key)

    def seal(self, secret: str, bound_to: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), bound_to.encode())
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, sealed: str, bound_to: str) -> str | None:
        """The secret, or None when it was sealed for another context or with another key."""
        if not sealed.startswith(_VERSION):
            return None
        try:
            blob = base64.urlsafe_b64decode(sealed[len(_VERSION) :])
            return self._aead.decrypt(blob[:12], blob[12:], bound_to.encode()).decode()
        except (InvalidTag, ValueError, binascii.Error):
            return None


def sealer_for(core: CoreSettings) -> Sealer:
    """The process's sealer: from `OPENMEMORY_SECRETS_KEY`, else from the data dir's key file."""
    if core.secrets_key is not None:
        return _from_text(core.secrets_key.get_secret_value())
    return _from_file(core.data_dir / KEY_FILE)


@functools.lru_cache(maxsize=8)
def _from_text(text: str) -> Sealer:
    try:
        key = base64.urlsafe_b64decode(text.strip() + "=" * (-len(text.strip()) % 4))
    except (ValueError, binascii.Error) as exc:
        raise ConfigurationError("OPENMEMORY_SECRETS_KEY is not URL-safe base64") from exc
    return Sealer(key)


@functools.lru_cache(maxsize=8)
def _from_file(path: Path) -> Sealer:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        # Written whole under another name, then linked in place: a sibling process starting at the
        # same moment either wins (and both use its key) or finds the finished file, never half of it.
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_secrets_key() + "\n")
        try:
            os.link(draft, path)
            log.info("made the secrets key %s (0600)", path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return _from_text(path.read_text())


def new_secrets_key() -> str:
    """A fresh value for OPENMEMORY_SECRETS_KEY."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
