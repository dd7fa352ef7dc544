#!/usr/bin/env python3
"""drive.py PORT KEY N: N non-streaming chat completions through Weir, one at a time on one
kept-alive connection (bench/instructions; standard library only). Fails on any non-200."""

import http.client
import json
import sys


def main():
    port, key, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    body = json.dumps({"model": "demo/echo", "messages": [{"role": "user", "content": "hello"}]})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(n):
        conn.request("POST", "/v1/chat/completions", body, headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            sys.exit(f"drive.py: HTTP {resp.status}")


if __name__ == "__main__":
    main()
