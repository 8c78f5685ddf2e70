"""Execution's domain signals: how a lower service tells higher ones that something happened, without importing
them (the import graph stays one-way: relay and protection use sync, never the other way round).

Receivers are connected once, in `execution.apps.ExecutionConfig.ready`; they run synchronously, in the sender's
transaction and thread, and their exceptions propagate to the sender as a direct call's would.
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent by execution.services.sync.positions_sync after the user's positions were brought in line with the venue.
# kwargs: user (accounts.User), positions (dict symbol -> venue position), correlation_id (str).
# Receiver: execution.services.protection.protection_follow (TP/SL of flat or flipped positions are cancelled).
positions_synced = Signal()
