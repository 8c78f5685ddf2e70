"""Container health probe: `python deploy/probe.py http://127.0.0.1:8000/readyz` exits 0 on a 2xx answer, 1 naming
what failed otherwise.

It asks with the public Host (FRONTEND_URL's): with ENVIRONMENT=production, ALLOWED_HOSTS holds only the public
host names, and a probe sent with Host 127.0.0.1 would be refused with 400 however healthy the server is.
Standard library only: it runs every few seconds in the web containers and must start fast.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

TIMEOUT_SEC = 8.0


def probe(url: str, *, public_url: str) -> str | None:
    """None when `url` answers 2xx, else why not."""
    request = urllib.request.Request(url, headers={"Host": urlsplit(public_url).netloc})
    # The server in this container, never through an HTTP(S)_PROXY the environment may name.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=TIMEOUT_SEC) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        body = exc.read(500).decode("utf-8", "replace")
        return f"{url} answered {exc.code}: {body}"
    except (OSError, ValueError) as exc:
        return f"{url} unreachable: {exc}"
    return None if 200 <= status < 300 else f"{url} answered {status}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python deploy/probe.py URL", file=sys.stderr)
        return 2
    problem = probe(argv[1], public_url=os.environ.get("FRONTEND_URL") or "http://127.0.0.1:8000")
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
