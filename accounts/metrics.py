from __future__ import annotations

from kernel.metrics import Counter

AUTH_FAILURES = Counter("hs_auth_failures_total", "Rejected auth requests by error code", ["code"])
AUTH_LOGINS = Counter("hs_auth_logins_total", "Successful wallet sign-ins", ["kind"])
AGENT_EVENTS = Counter("hs_agent_events_total", "Agent wallet lifecycle events", ["event"])
SESSION_ENDS = Counter("hs_session_ends_total", "Ended sessions by reason", ["reason"])
