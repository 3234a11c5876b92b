"""Capture and replay of every raw exchange response, below ccxt.

A :class:`RecordReplayAdapter` is a ``requests`` transport adapter mounted on a ccxt instance's
``session``. ccxt's whole request path still runs above it - JSON parsing, ``last_*`` attributes,
``handle_errors`` and its exception mapping - so a replay goes through exactly the parsing a live
run did (ccxt has no hook of its own that sees the wire bytes; overriding ``Exchange.fetch``
would mean copying its error handling).

On disk one response is two files in a directory:

* ``<slug>-<sha8>[-<seq>].body`` - the body bytes as they came off the wire (still gzip if the
  server compressed them);
* ``<slug>-<sha8>[-<seq>].meta.json`` - method, URL, status, reason, the ordered header pairs
  (``Date`` among them, which decides candle finality) and ``seq``.

Both capture and replay rebuild the ``requests.Response`` from those bytes through
``HTTPAdapter.build_response`` - the call requests itself makes for live traffic - so capture and
replay are bit-identical by construction. Requests are keyed by ``METHOD host/path?sorted query``
(volatile auth parameters dropped); repeated requests of one key are served in ``seq`` order.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from urllib3 import HTTPResponse
from urllib3._collections import HTTPHeaderDict

from sentinance.errors import MissingInputError

# query parameters that never say *what* is asked for (authentication, cache busting)
VOLATILE_PARAMS = frozenset({"timestamp", "signature", "recvwindow", "nonce", "_", "sign", "api_key", "apikey"})

Headers = list[tuple[str, str]]


class UnrecordedRequest(MissingInputError):
    """Replay met a request no capture holds (not a ``requests`` error, so ccxt never wraps it)."""


def canonical_key(method: str, url: str, body: bytes | str | None = None) -> str:
    """``METHOD host/path?sorted&query`` without volatile parameters, ``#sha256(body)`` if any."""
    parts = urlsplit(url)
    query = sorted(
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in VOLATILE_PARAMS
    )
    key = f"{method.upper()} {parts.netloc.lower()}{parts.path}"
    if query:
        key += "?" + "&".join(f"{k}={v}" for k, v in query)
    if body:
        raw = body.encode() if isinstance(body, str) else body
        key += "#" + hashlib.sha256(raw).hexdigest()[:16]
    return key


def _stem(key: str, seq: int) -> str:
    target = key.split(" ", 1)[1].split("#", 1)[0]
    path, _, query = target.partition("?")
    values = "_".join(v.split("=", 1)[-1] for v in query.split("&")) if query else ""
    slug = path.split("/", 1)[-1] + (f"__{values}" if values else "")
    slug = re.sub(r"[^A-Za-z0-9.]+", "_", slug).strip("_")[:100] or "root"
    return f"{slug}-{hashlib.sha256(key.encode()).hexdigest()[:8]}" + (f"-{seq}" if seq else "")


@dataclass(frozen=True)
class Recorded:
    """One response as it came off the wire."""

    status: int
    reason: str
    headers: Headers
    body: bytes


def write_response(directory: Path, method: str, url: str, response: Recorded, seq: int, request_body: Any) -> None:
    """``<stem>.body`` and ``<stem>.meta.json`` of one response."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = _stem(canonical_key(method, url, request_body), seq)
    (directory / f"{stem}.body").write_bytes(response.body)
    meta = {
        "method": method.upper(),
        "url": url,
        "seq": seq,
        "status": response.status,
        "reason": response.reason,
        "headers": [list(h) for h in response.headers],
    }
    if request_body:
        raw = request_body.encode() if isinstance(request_body, str) else request_body
        meta["request_body_sha256"] = hashlib.sha256(raw).hexdigest()
    (directory / f"{stem}.meta.json").write_text(json.dumps(meta, indent=1) + "\n")


def load_index(directories: Iterable[Path]) -> dict[str, list[tuple[dict, Path]]]:
    """key -> [(meta, body file), ...] in ``seq`` order; the first directory holding a key wins."""
    index: dict[str, list[tuple[dict, Path]]] = {}
    for directory in directories:
        found: dict[str, list[tuple[dict, Path]]] = {}
        for meta_path in sorted(Path(directory).glob("*.meta.json")):
            meta = json.loads(meta_path.read_text())
            key = canonical_key(meta["method"], meta["url"])
            if meta.get("request_body_sha256"):
                key += "#" + meta["request_body_sha256"][:16]
            body = meta_path.with_name(meta_path.name.removesuffix(".meta.json") + ".body")
            found.setdefault(key, []).append((meta, body))
        for key, entries in found.items():
            index.setdefault(key, sorted(entries, key=lambda entry: entry[0].get("seq", 0)))
    return index


@dataclass
class Observer:
    """What the adapter reports to its owner after every response (the limiter reads the headers)."""

    observe: Callable[[int, Mapping[str, str]], None] = lambda status, headers: None
    requests: list[tuple[str, int]] = field(default_factory=list)  # (key, status) of every response served


class RecordReplayAdapter(HTTPAdapter):
    """``capture``: send upstream (the network, or another adapter), save the wire bytes, answer from
    them; ``replay``: answer from saved responses only, in the layered ``directories``."""

    def __init__(
        self,
        mode: str,
        directories: Iterable[Path],
        *,
        capture_dir: Path | None = None,
        upstream: HTTPAdapter | None = None,
        report: Observer | None = None,
    ) -> None:
        super().__init__()
        if mode not in ("capture", "replay") or (mode == "capture" and capture_dir is None):
            raise ValueError(f"mode must be replay, or capture with a capture_dir; got {mode!r}")
        self.mode, self.directories = mode, [Path(d) for d in directories]
        self.capture_dir, self.upstream = capture_dir, upstream
        self.report = report or Observer()
        self.index = load_index(self.directories) if mode == "replay" else {}
        self._seen: dict[str, int] = {}
        self._lock = threading.Lock()

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> Response:
        key = canonical_key(request.method or "GET", request.url or "", request.body)
        with self._lock:  # repeated requests of one key walk seq 0, 1, 2, ... (replay then repeats the last)
            seq = self._seen.get(key, 0)
            self._seen[key] = seq + 1
        if self.mode == "replay":
            recorded = self._lookup(key, seq)
        else:
            send = self.upstream.send if self.upstream is not None else super().send
            live = send(request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
            try:
                body = live.raw.read(decode_content=False)  # the wire bytes
                recorded = Recorded(live.status_code, live.reason, list(live.raw.headers.items()), body)
            finally:
                live.close()
            write_response(
                self.capture_dir,  # type: ignore[arg-type]  # checked in __init__
                request.method or "GET",
                request.url or "",
                recorded,
                seq,
                request.body,
            )
        self.report.requests.append((key, recorded.status))
        response = self.rebuild(request, recorded)
        self.report.observe(recorded.status, response.headers)
        return response

    def rebuild(self, request: PreparedRequest, recorded: Recorded) -> Response:
        """Wire bytes -> ``requests.Response`` through the path requests takes for live traffic."""
        raw = HTTPResponse(
            body=io.BytesIO(recorded.body),
            headers=HTTPHeaderDict(recorded.headers),
            status=recorded.status,
            reason=recorded.reason,
            preload_content=False,
            decode_content=True,
            request_method=request.method,
            request_url=request.url,
        )
        return self.build_response(request, raw)

    def _lookup(self, key: str, seq: int) -> Recorded:
        entries = self.index.get(key)
        if not entries:
            where = ", ".join(str(d) for d in self.directories)
            raise UnrecordedRequest(f"replay: no captured response for {key} in {where}")
        meta, body = entries[min(seq, len(entries) - 1)]
        return Recorded(int(meta["status"]), meta["reason"], [tuple(h) for h in meta["headers"]], body.read_bytes())
