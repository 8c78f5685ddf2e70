"""Users are wallets: identity is the EIP-55 checksummed address; traders have no passwords."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from eth_utils import is_checksum_address


def validate_checksum_address(value: str) -> None:
    if not isinstance(value, str) or not is_checksum_address(value):
        raise ValidationError(f"{value!r} is not an EIP-55 checksummed address", code="invalid_address")


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    OPERATOR = "operator", "Operator"
    TRADER = "trader", "Trader"


class UserManager(BaseUserManager["User"]):
    def create_user(self, address: str, role: str = Role.TRADER, **extra: Any) -> User:
        validate_checksum_address(address)
        user = self.model(address=address, role=role, **extra)
        user.set_unusable_password()
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_superuser(self, address: str, password: str | None = None, **extra: Any) -> User:
        # Admins sign in with their wallet too; the password argument exists only for Django's signature.
        return self.create_user(address, role=Role.ADMIN, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    address = models.CharField(
        max_length=42, unique=True, validators=[validate_checksum_address], help_text="EIP-55 checksummed address"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.TRADER)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()  # type: ignore[assignment]

    USERNAME_FIELD = "address"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return self.address

    @property
    def is_staff(self) -> bool:
        """Admins and operators reach Django admin (operators read-only)."""
        return self.is_active and self.role in (Role.ADMIN, Role.OPERATOR)

    @property
    def is_admin(self) -> bool:
        return self.is_active and self.role == Role.ADMIN

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        if not self.is_active:
            return False
        if self.role == Role.ADMIN:
            return True
        if self.role == Role.OPERATOR:
            # Operators read everything and may trigger the emergency stop; they change no configuration.
            return perm.split(".", 1)[-1].startswith("view_") or perm == "execution.trigger_emergency_stop"
        return super().has_perm(perm, obj)

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_staff or super().has_module_perms(app_label)


class SiweNonce(models.Model):
    """A sign-in challenge: single use, short-lived, bound to the session and address that asked for it."""

    value = models.CharField(max_length=64, unique=True)
    session_hash = models.CharField(max_length=64, help_text="sha256 of the anonymous session key it was issued to")
    address = models.CharField(max_length=42)
    chain_id = models.BigIntegerField()
    is_demo = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = (models.Index(fields=("expires_at",)),)

    def __str__(self) -> str:
        return f"nonce for {self.address}"


class UserSession(models.Model):
    """A signed-in browser session, tracked so it can be listed and revoked.

    `session_key` is the current Django session key (it changes on rotation); `public_id` is what the API shows.
    The raw key is kept (Django's own session table holds it too) because closing a revoked session's sockets
    and deleting its server-side session need it.
    """

    public_id = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sessions")
    session_key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    rotated_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=256, blank=True, default="")
    is_demo = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        ordering = ("-created_at",)
        indexes = (models.Index(fields=("user", "revoked_at")),)

    def __str__(self) -> str:
        return f"session {self.public_id} of {self.user_id}"


class AgentStatus(models.TextChoices):
    PREPARED = "prepared", "Prepared (awaiting the user's signature)"
    APPROVED = "approved", "Approved by the venue"
    REVOKED = "revoked", "Revoked"
    REPLACED = "replaced", "Replaced by a newer agent"
    DISCARDED = "discarded", "Discarded before approval"
    FAILED = "failed", "Venue refused the approval"
    EXPIRED = "expired", "Expired"


class AgentWallet(models.Model):
    """A delegated agent (API wallet) key, encrypted at rest and bound to (user, agent address).

    An agent address is never reused: after an agent is pruned or replaced its old signed actions could replay.
    The ciphertext is destroyed (emptied) when the agent leaves the prepared/approved states.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="agents")
    agent_address = models.CharField(max_length=42, unique=True, validators=[validate_checksum_address])
    agent_name = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=AgentStatus.choices, default=AgentStatus.PREPARED)
    key_id = models.CharField(max_length=16, blank=True, default="")
    ciphertext = models.BinaryField(null=True, blank=True, editable=False)
    approval_nonce = models.BigIntegerField(help_text="ms timestamp signed in approveAgent")
    hyperliquid_chain = models.CharField(max_length=16)
    signature_chain_id = models.CharField(max_length=16)
    valid_until = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    approved_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    venue_response = models.CharField(max_length=512, blank=True, default="")

    class Meta:
        ordering = ("-created_at",)
        indexes = (models.Index(fields=("user", "status")),)

    def __str__(self) -> str:
        return f"agent {self.agent_address} of {self.user_id} ({self.status})"
