"""Writes of the accounts app: sign-in, sessions, agent wallets. Import from here (`accounts.services`)."""

from accounts.services.agents import (
    AgentNotReady,
    agent_approve,
    agent_keys_rotate,
    agent_prepare,
    agent_revoke,
    agent_signing_wallet,
)
from accounts.services.sessions import (
    session_end,
    session_revoke,
    session_rotate,
    session_start,
    session_touch,
    sessions_expire,
)
from accounts.services.signin import role_grant, siwe_challenge_issue, siwe_sign_in

__all__ = [
    "AgentNotReady",
    "agent_approve",
    "agent_keys_rotate",
    "agent_prepare",
    "agent_revoke",
    "agent_signing_wallet",
    "role_grant",
    "session_end",
    "session_revoke",
    "session_rotate",
    "session_start",
    "session_touch",
    "sessions_expire",
    "siwe_challenge_issue",
    "siwe_sign_in",
]
