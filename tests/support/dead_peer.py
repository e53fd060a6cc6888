"""A wire connection whose peer stops answering, inside a network namespace of its own (root only).

`unshare --net python -m tests.support.dead_peer --timeout 3` brings the namespace's loopback up, starts a real
JsonLineServer with that `dead_peer_timeout`, connects a client that says hello and then sends nothing (as JEXEC's
requester waiting for a long script), takes the loopback down (the peer stops answering, nothing is closed), and
prints `gone after <seconds>` once the server has dropped the connection, or `still there after <seconds>`.
"""

from __future__ import annotations

import argparse
import subprocess
import time

from redpss.core.wire import PROTOCOL_VERSION, Limits, encode
from tests.support.wire_server import SECRET, WireServerThread


def connections(server: WireServerThread) -> int:
    assert server.server is not None
    return len(server.server.connections)


def main() -> int:
    parser = argparse.ArgumentParser(prog="dead_peer")
    parser.add_argument("--timeout", type=float, required=True, help="the server's dead_peer_timeout")
    parser.add_argument("--wait", type=float, default=30.0, help="how long to wait for the server to notice")
    args = parser.parse_args()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with WireServerThread(limits=Limits(dead_peer_timeout=args.timeout)) as server, server.raw() as sock:
        sock.sendall(encode({"op": "hello", "version": PROTOCOL_VERSION, "secret": SECRET, "client": "idle"}))
        assert b'"ok":true' in sock.makefile("rb").readline()  # the hello's answer: the connection counts
        subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
        began = time.monotonic()
        while connections(server) and time.monotonic() - began < args.wait:
            time.sleep(0.1)  # pacing: polling the server's connection count against the deadline above
        state = "still there" if connections(server) else "gone"
        print(f"{state} after {time.monotonic() - began:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
