"""Agent keys at rest: AES-256-GCM under a keyring from AGENT_WALLET_ENCRYPTION_KEY, bound to their owner.

The associated data is `user_id|user_address|agent_address`, so a ciphertext copied into another user's row (or
onto another agent address) fails authentication instead of decrypting (Fernet could not do that). The first key
of the list encrypts; every ciphertext records the id of the key that sealed it, so old keys keep decrypting until
`manage.py rotate_agent_keys` has re-sealed every row with the newest one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from kernel.errors import ApplicationError

logger = logging.getLogger(__name__)

_VERSION = b"\x01"
_NONCE_LEN = 12


class DecryptionFailed(ApplicationError):
    code = "agent_key_unreadable"
    status = 500


@dataclass(frozen=True, slots=True)
class Keyring:
    keys: tuple[tuple[str, bytes], ...]  # (key id, 32-byte key); the first encrypts

    @property
    def current_id(self) -> str:
        return self.keys[0][0]

    def key(self, key_id: str) -> bytes | None:
        return next((k for kid, k in self.keys if kid == key_id), None)


def key_id_for(key: bytes) -> str:
    return hashlib.sha256(b"hs-agent-key-id|" + key).hexdigest()[:12]


def parse_key(raw: str) -> bytes:
    """A key is urlsafe (or standard) base64 of exactly 32 bytes, like a Fernet key."""
    try:
        key = base64.urlsafe_b64decode(raw.strip().replace("+", "-").replace("/", "_") + "==")
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ImproperlyConfigured(
            "Environment variable AGENT_WALLET_ENCRYPTION_KEY is invalid: expected comma-separated base64 "
            "encodings of 32 random bytes (e.g. `python -c 'import os,base64;print(base64.urlsafe_b64encode("
            "os.urandom(32)).decode())'`)."
        )
    return key


@lru_cache(maxsize=4)
def _keyring_for(raw_keys: tuple[str, ...], secret_key: str, environment: str) -> Keyring:
    if raw_keys:
        keys = tuple((key_id_for(k), k) for k in (parse_key(r) for r in raw_keys))
        return Keyring(keys=keys)
    if environment in ("production", "staging"):
        raise ImproperlyConfigured("AGENT_WALLET_ENCRYPTION_KEY is not set; refusing to store agent keys.")
    # Development/test only: a deterministic key so a restart can still read what it stored.
    logger.warning("AGENT_WALLET_ENCRYPTION_KEY is not set: using a development-only agent key derived locally")
    dev = hashlib.sha256(b"hypersentry-dev-agent-wallet-key|" + secret_key.encode()).digest()
    return Keyring(keys=((key_id_for(dev), dev),))


def keyring() -> Keyring:
    return _keyring_for(tuple(settings.AGENT_WALLET_ENCRYPTION_KEY), settings.SECRET_KEY, settings.ENVIRONMENT)


def associated_data(*, user_id: int, user_address: str, agent_address: str) -> bytes:
    return f"{user_id}|{user_address}|{agent_address}".encode()


def seal(*, plaintext: bytes, aad: bytes, ring: Keyring | None = None) -> tuple[str, bytes]:
    """Encrypt with the newest key; returns (key id, version || nonce || ciphertext+tag)."""
    ring = ring or keyring()
    nonce = os.urandom(_NONCE_LEN)
    sealed = AESGCM(ring.keys[0][1]).encrypt(nonce, plaintext, aad)
    return ring.current_id, _VERSION + nonce + sealed


def open_sealed(*, key_id: str, blob: bytes, aad: bytes, ring: Keyring | None = None) -> bytes:
    ring = ring or keyring()
    key = ring.key(key_id)
    if key is None:
        raise DecryptionFailed(f"agent key was sealed with key id {key_id}, which is not configured")
    blob = bytes(blob)
    if len(blob) < 1 + _NONCE_LEN + 16 or blob[:1] != _VERSION:
        raise DecryptionFailed("agent key ciphertext is malformed")
    try:
        return AESGCM(key).decrypt(blob[1 : 1 + _NONCE_LEN], blob[1 + _NONCE_LEN :], aad)
    except InvalidTag as exc:
        raise DecryptionFailed("agent key ciphertext does not belong to this user and agent") from exc
