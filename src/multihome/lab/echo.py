"""The lab's HTTP echo service (standard library only; run as a script, not imported).

``GET /`` answers with the caller's address, like ifconfig.me; the header ``X-Local-Address``
names the address that was reached. ``--file URLPATH=FILE`` serves a file (the metadata host's
``network_data.json`` and ``meta_data.json``, read on every request); with files, any other
path but ``/`` is 404. It binds, then detaches: the parent writes the daemon's pid to
``--pid-file`` and exits 0, so the caller knows it is listening; a bind error exits 1.
An IPv6 ``--bind`` listens in IPv6 (``::``: both families; IPv4 callers and addresses are
shown as IPv4, not as ``::ffff:a.b.c.d``).

    python3 echo.py --bind 198.51.100.10 --port 80 --pid-file /run/.../echo.pid
"""

from __future__ import annotations

import argparse
import os
import socket
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class EchoHandler(BaseHTTPRequestHandler):
    """Answers GET with the caller's address, or with a configured file."""

    files: dict[str, Path] = {}  # noqa: RUF012 - set once per process before serving

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in self.files:
            body = self.files[path].read_bytes()
            content_type = "application/json"
        elif self.files and path != "/":
            # A metadata host: an unknown document is 404, as on Nova's metadata service
            # (an echo there would look like malformed JSON to the guest).
            self.send_error(404)
            return
        else:
            body = f"{_plain(self.client_address[0])}\n".encode()
            content_type = "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Local-Address", _plain(self.connection.getsockname()[0]))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{_plain(self.client_address[0])} {format % args}\n")


def _plain(address: str) -> str:
    """An IPv4-mapped IPv6 address as IPv4."""
    return address.removeprefix("::ffff:") if "." in address else address


class EchoServer(ThreadingHTTPServer):
    """The echo server. It binds without asking DNS for its own name (HTTPServer's
    ``getfqdn``): where a resolver is configured but unreachable, as in a booted test guest,
    that lookup held the start-up for 10 s."""

    allow_reuse_address = True
    daemon_threads = True

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


class EchoServer6(EchoServer):
    """The echo server in IPv6 (with ``::``, IPv4 too: the kernel's bindv6only is 0)."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="HTTP echo of the caller's address")
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--pid-file", required=True, type=Path)
    parser.add_argument("--log", type=Path, default=Path(os.devnull))
    parser.add_argument("--file", action="append", default=[], metavar="URLPATH=FILE")
    args = parser.parse_args(argv)
    EchoHandler.files = {}
    for spec in args.file:
        url, _, file = spec.partition("=")
        EchoHandler.files[url] = Path(file)
    try:
        server_class = EchoServer6 if ":" in args.bind else EchoServer
        server = server_class((args.bind, args.port), EchoHandler)
    except OSError as exc:
        print(f"echo: cannot listen on {args.bind}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    pid = os.fork()
    if pid:
        args.pid_file.write_text(f"{pid}\n", encoding="utf-8")
        return 0
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    log = os.open(args.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
