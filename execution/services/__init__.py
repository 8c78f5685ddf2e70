"""Writes of the execution app, by topic: relay (submit/cancel/modify/close), idempotency, controls (switches,
limits, breakers), killswitch, sync (venue → local, reconciliation), protection (TP/SL, trailing stops), events
(private stream publishing)."""
