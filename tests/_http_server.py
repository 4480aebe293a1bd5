"""A local HTTP server for the download tests: files of a folder, with the behaviours
of real hosts that downloads must survive (cut connections, Range ignored or wrong,
redirects, authentication), and ``mirror_server``, which points alignkit's cache and
mirror variables at it.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


class FileServer:
    """Serves ``root``; records ``(path, Range header)`` of every GET.

    ``cut`` holds paths whose first GET sends half the body and closes the
    connection; ``no_range`` holds paths for which ``Range`` is ignored (200).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.cut: set[str] = set()
        self.no_range: set[str] = set()
        self.range_from_zero: set[str] = set()
        self.always_cut: set[str] = set()
        self.auth: str | None = None  # an Authorization header every GET must carry
        self.auth_seen: list[str | None] = []
        self.redirect: dict[str, str] = {}  # path -> where a 302 sends it
        srv = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's name)
                rng = self.headers.get("Range")
                srv.requests.append((self.path, rng))
                srv.auth_seen.append(self.headers.get("Authorization"))
                if self.path in srv.redirect:
                    self.send_response(302)
                    self.send_header("Location", srv.redirect[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if srv.auth is not None and self.headers.get("Authorization") != srv.auth:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                f = srv.root / self.path.split("?", 1)[0].lstrip("/")
                if not f.is_file():
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = f.read_bytes()
                start = 0
                if rng and self.path in srv.range_from_zero:  # 206, but the whole file
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
                elif rng and self.path not in srv.no_range:
                    start = int(rng.split("=", 1)[1].split("-", 1)[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in srv.cut or self.path in srv.always_cut:
                    srv.cut.discard(self.path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> list[str]:
        """The paths of the GET requests served so far, in order."""
        return [path for path, _ in self.requests]

    def put(self, rel: str, data: bytes) -> str:
        """Write ``data`` at ``/pub/<rel>``; return its sha256."""
        f = self.root / "pub" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def mirror_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    """A :class:`FileServer` of ``tmp_path/www``, with ``ALIGNKIT_DATA`` at ``tmp_path/cache``
    and ``ALIGNKIT_DATA_MIRROR`` at the server, online (for a fixture to yield from)."""
    www = tmp_path / "www"
    www.mkdir()
    srv = FileServer(www)
    monkeypatch.setenv("ALIGNKIT_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("ALIGNKIT_DATA_MIRROR", srv.base)
    monkeypatch.delenv("ALIGNKIT_OFFLINE", raising=False)
    yield srv
    srv.close()
