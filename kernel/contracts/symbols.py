"""The one symbol grammar: every place that takes a market symbol (REST parameters and bodies, WS frames, event
envelopes, command flags) checks it against this, in the venue's own case (kPEPE) unless it says otherwise."""

from __future__ import annotations

import re
from typing import Final

SYMBOL_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9/_\-@.]{0,31}"
SYMBOL_RE: Final = re.compile(rf"^{SYMBOL_PATTERN}$")
SYMBOL_HELP: Final = "must be 1-32 characters of letters, digits and / _ - @ ., starting with a letter or digit"


def symbol_valid(value: object) -> bool:
    return isinstance(value, str) and SYMBOL_RE.match(value) is not None
