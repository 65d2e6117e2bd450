"""Captures ARP frames in the peer namespace of a bench lab (run with ``ip netns exec``),
guarded like the benchmark's worker: it refuses to run anywhere but in the namespace named by
--netns.

It prints ``ready`` once its packet socket listens, then, after ``--seconds`` or as soon as
every one of ``--ports`` interfaces has received a gratuitous ARP, one JSON list of the ARP
frames it saw: ``{"ifname", "op", "sha", "spa", "tpa"}``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from worker import require_namespace

ETH_P_ARP = 0x0806
ARP = struct.Struct("!HHBBH6s4s6s4s")


def capture(seconds: float, ports: int) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    announced: set[str] = set()
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        print("ready", flush=True)
        deadline = time.monotonic() + seconds
        while len(announced) < ports:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                data, where = sock.recvfrom(2048)
            except TimeoutError:
                break
            if len(data) < 14 + ARP.size:
                continue
            _hw, _proto, _hlen, _plen, op, sha, spa, _tha, tpa = ARP.unpack_from(data, 14)
            frame = {
                "ifname": where[0],
                "op": op,
                "sha": sha.hex(":"),
                "spa": str(ipaddress.IPv4Address(spa)),
                "tpa": str(ipaddress.IPv4Address(tpa)),
            }
            frames.append(frame)
            if frame["spa"] == frame["tpa"]:
                announced.add(where[0])
    return frames


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--netns", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ports", type=int, required=True)
    args = parser.parse_args()
    require_namespace(args.netns)
    print(json.dumps(capture(args.seconds, args.ports)), flush=True)


if __name__ == "__main__":
    main()
