"""``vigil.Client``: the HTTP SDK for a running Vigil server."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx

from vigil.core.errors import VigilError


class ClientError(VigilError):
    """The server refused the request; ``status`` and ``body`` say why."""

    def __init__(self, status: int, body: Any) -> None:
        self.status, self.body = status, body
        detail = body.get("detail") if isinstance(body, dict) else body
        super().__init__(f"HTTP {status}: {detail}")


class Client:
    """One keep-alive HTTP connection pool to a Vigil server; use as a context manager.
    Every refusal raises ``ClientError`` with the server's problem body."""

    def __init__(self, url: str = "http://127.0.0.1:9470", *, timeout_s: float = 30.0,
                 headers: Mapping[str, str] | None = None, token: str | None = None) -> None:
        """``token``: a bearer token or API key, sent as ``Authorization: Bearer``."""
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s,
                                  headers=all_headers)

    def _check(self, r: httpx.Response) -> httpx.Response:
        if r.status_code >= 400:
            try:
                body: Any = r.json()
            except ValueError:
                body = r.text
            raise ClientError(r.status_code, body)
        return r

    def write(self, samples: Iterable[Mapping[str, Any]]) -> None:
        """Samples in the JSON shape: name, value, timestamp, labels, type, category."""
        self._check(self._http.post("/api/v1/metrics", json={"samples": list(samples)}))

    def write_lines(self, lines: str | bytes, precision: str = "ns", gzipped: bool = True) -> None:
        """InfluxDB line protocol."""
        body = lines.encode() if isinstance(lines, str) else lines
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if gzipped:
            body = gzip.compress(body, 1)
            headers["Content-Encoding"] = "gzip"
        self._check(self._http.post("/write", params={"precision": precision}, content=body,
                                    headers=headers))

    def query(self, name: str, *, match: Sequence[str] = (), **params: Any) -> dict[str, Any]:
        """``GET /api/v1/query``; params: start, end, step, fn, q, group_by, window, tier."""
        p: list[tuple[str, str | int | float | bool | None]] = [
            ("name", name), *(("match", m) for m in match),
            *((k, str(v)) for k, v in params.items() if v is not None)]
        result: dict[str, Any] = self._check(self._http.get("/api/v1/query", params=p)).json()
        return result

    def export(self, name: str, fmt: str, *, match: Sequence[str] = (), **params: Any) -> bytes:
        p: list[tuple[str, str | int | float | bool | None]] = [
            ("name", name), ("format", fmt), *(("match", m) for m in match),
            *((k, str(v)) for k, v in params.items() if v is not None)]
        return self._check(self._http.get("/api/v1/query", params=p)).content

    def get(self, path: str, **params: Any) -> Any:
        return self._check(self._http.get(path, params=params)).json()

    def get_text(self, path: str, **params: Any) -> str:
        """A text answer, e.g. ``/metrics`` (Prometheus text format)."""
        return self._check(self._http.get(path, params=params)).text

    def post(self, path: str, body: Any) -> Any:
        """POST a JSON body; the JSON answer (None for 204)."""
        r = self._check(self._http.post(path, json=body))
        return r.json() if r.content else None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
