#!/usr/bin/env python3
"""Streaming time-to-first-byte, direct to the mock and through Weir, with one client.

Opens one keep-alive HTTP/1.1 connection to each target and sends `stream: true` chat
completions back to back, alternating between the two targets so that both see the same
machine conditions. For every request it records, counting from just before the request is
written to the socket:

  head   time to the first byte of the response (status line)
  data   time to the first `data:` line of the body (the first token a client can show)
  total  time to the end of the response (the terminating zero-length chunk)

The client is the same for both targets, so its own overhead (Python, the socket calls)
appears in both and cancels out in the difference "through Weir - direct". Timestamps are
`time.perf_counter_ns()`. Only the standard library is used.

Output: one `key=value` line per figure (microseconds), read by bench/run.
"""

import argparse
import json
import socket
import sys
import time


class Conn:
    """One keep-alive connection that reads HTTP/1.1 responses (Content-Length or chunked)."""

    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed by the server")
        self.buf += data
        return time.perf_counter_ns()

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(self, raw):
        """Sends one request; returns (status, body, t_head, t_data, t_end) in ns since send."""
        assert not self.buf, "unread bytes from a previous response"
        t0 = time.perf_counter_ns()
        self.sock.sendall(raw)
        t_head = self._fill() - t0
        status = int(self._line().split(b" ", 2)[1])
        headers = {}
        while True:
            line = self._line()
            if not line:
                break
            k, _, v = line.partition(b":")
            headers[k.strip().lower()] = v.strip().lower()
        body = b""
        t_data = None
        if headers.get(b"transfer-encoding") == b"chunked":
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():  # trailers, then the empty line
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
                if t_data is None and b"data:" in body:
                    t_data = time.perf_counter_ns() - t0
        else:
            body = self._exact(int(headers.get(b"content-length", b"0")))
        t_end = time.perf_counter_ns() - t0
        if t_data is None and b"data:" in body:
            t_data = t_end
        return status, body, t_head, t_data, t_end


def build(host, port, key, model, words):
    body = json.dumps(
        {
            "model": model,
            "stream": True,
            "messages": [{"role": "user", "content": f"[[mock words={words}]] hello"}],
        },
        separators=(",", ":"),
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def pct(sorted_values, p):
    """Nearest-rank percentile."""
    i = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[i]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--direct", required=True, help="host:port of the mock")
    ap.add_argument("--weir", required=True, help="host:port of Weir")
    ap.add_argument("--key", required=True, help="Weir API key")
    ap.add_argument("--words", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring time")
    ap.add_argument("--warmup", type=float, default=1.0)
    a = ap.parse_args()

    targets = {}
    for name, hp, key, model in (
        ("direct", a.direct, "anything", "echo"),
        ("weir", a.weir, a.key, "demo/echo"),
    ):
        host, port = hp.rsplit(":", 1)
        targets[name] = (Conn(host, int(port)), build(host, port, key, model, a.words))

    samples = {n: {"head": [], "data": [], "total": []} for n in targets}
    errors = 0
    for phase, seconds in (("warmup", a.warmup), ("measure", a.seconds)):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, (conn, raw) in targets.items():
                status, body, t_head, t_data, t_end = conn.request(raw)
                ok = status == 200 and b"data: [DONE]" in body and t_data is not None
                if phase == "warmup":
                    continue
                if not ok:
                    errors += 1
                    continue
                s = samples[name]
                s["head"].append(t_head)
                s["data"].append(t_data)
                s["total"].append(t_end)

    out = {"errors": errors, "words": a.words}
    for name, s in samples.items():
        out[f"{name}_n"] = len(s["data"])
        for what, values in s.items():
            values.sort()
            for p in (50, 99):
                out[f"{name}_{what}_p{p}_us"] = f"{pct(values, p) / 1000:.1f}"
    for k, v in out.items():
        print(f"{k}={v}")
    return 0 if errors == 0 and out["direct_n"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
