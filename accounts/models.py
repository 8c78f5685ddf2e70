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
