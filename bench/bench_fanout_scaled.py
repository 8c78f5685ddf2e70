"""Scaled fan-out: the split topology's /ws path next to plain `websockets.broadcast`, same clients, same run.

    .venv/bin/python bench/bench_fanout_scaled.py           # 1000 clients × ~10 frames/s, 2 web processes, ~1 minute
    .venv/bin/python bench/bench_fanout_scaled.py --webs 3 --clients 1500

This is `bench_fanout.py --modes split,gateway,websockets --goals-for split` (every option of bench_fanout.py
applies; the servers, clients, window and counting are that file's):
  split       a throwaway redis-server; two `uvicorn hypersentry.asgi:application` processes with docker-compose.yml's
              flags and REDIS_URL, so the broadcaster is kernel.realtime.RedisBroadcaster (one pattern subscription
              per web process, local fan-out); a publisher process calling `get_broadcaster().publish` as ingest
              does (PUBLISH); the 1000 client sockets alternate between the two web processes.
  gateway     the one-process topology (in-memory broadcaster), for attribution: split / gateway is what the Redis hop
              and the second process cost, gateway / websockets what the gateway's own send path costs.
  websockets  plain `websockets` server + websockets.broadcast of the same frames to the same clients (one process,
              its publisher inside it): the practical limit and the baseline of the goal.

Server CPU of the split topology = both web processes + redis-server; the publisher's is printed apart (ingest's
work, which the baseline's in-process publisher also does). Goals of the split topology (exit 1 when one is missed):
p99 ≤ 100 ms, CPU per delivered frame ≤ 1.5× plain websockets', ≥ 99.9 % of the expected frames delivered.
"""

from __future__ import annotations

import sys

from bench_fanout import main

if __name__ == "__main__":
    main(["--modes", "split,gateway,websockets", "--goals-for", "split", *sys.argv[1:]])
