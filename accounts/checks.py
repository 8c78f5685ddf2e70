from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from eth_utils import is_checksum_address


@register()
def admin_addresses_are_checksummed(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    bad = [a for a in settings.ADMIN_ADDRESSES if not is_checksum_address(a)]
    return [
        Error(
            f"ADMIN_ADDRESSES contains {a!r}, which is not an EIP-55 checksummed address",
            hint="Use the mixed-case address your wallet shows.",
            id="accounts.E001",
        )
        for a in bad
    ]
