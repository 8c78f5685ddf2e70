"""The kernel: what every app uses — errors, settings readers, the worker shell, rate limiting, logging, metrics,
periodic jobs, contracts, heartbeats, the venue client and the realtime hub. It imports no app and no wiring."""
