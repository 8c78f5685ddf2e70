"""Shared typed contracts: the canonical event envelope, the symbol snapshot with freshness, channel names."""
