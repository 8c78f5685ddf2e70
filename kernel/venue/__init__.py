"""The one Hyperliquid client: every call any process makes to the venue goes through this package.

* `client`      — budgeted HTTP: POST /info and /exchange, the shared per-IP weight budget with priorities, per-user
                  read quotas, the shared backoff after a 429, hard timeouts (`VenueError`, `VenueTimeout`).
* `exchange`    — the signed side: L1 actions signed with the agent wallet (the SDK's `sign_l1_action`), per-signer
                  nonces across processes, signed posts.
* `meta`        — `meta` / `spotMeta` cached, perp asset specs by exact venue name.
* `rounding`    — the venue's tick, lot and significant-figure rules as pure functions.
* `market_data` — market reads (books, mids, universe, candles) with TTL caches, per-class budgets, singleflight and
                  last-good answers during a cooldown.
* `streams`     — the WebSocket side: URL, subscription frames, back-off, and the user-feed socket.

Used by markets (ingest, market REST), execution (orders, account reads, reconciliation, user feeds) and accounts
(approveAgent). No app imports (import-linter: kernel is the bottom layer).
"""
