"""Shared typed contracts: the canonical event envelope, the symbol snapshot with freshness, channel names, and
`records.fields_dict` (a dataclass as a one-level dict) behind their `as_dict` methods."""
