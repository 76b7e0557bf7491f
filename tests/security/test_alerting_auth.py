"""Alerting behind authentication: scopes per route, tenants apart, who from the token."""

from __future__ import annotations

import time

import httpx

from tests.alerting.test_delivery import wait_until
from tests.conftest import Server
from tests.security.conftest import bearer
from vigil.app import Components

RULE = {"name": "cpu high", "metric": "cpu", "channels": ["ops"],
        "condition": {"type": "threshold", "op": ">", "threshold": 90}}


def test_viewers_read_editors_change(shttp: httpx.Client) -> None:
    viewer, editor = bearer("acme", "viewer"), bearer("acme", "editor")
    assert shttp.get("/api/v1/rules").status_code == 401
    r = shttp.post("/api/v1/channels", json={"name": "ops", "type": "websocket"},
                   headers=viewer)
    assert r.status_code == 403 and "alerts:write" in r.json()["detail"]
    assert shttp.post("/api/v1/channels", json={"name": "ops", "type": "websocket"},
                      headers=editor).status_code == 201
    assert shttp.post("/api/v1/rules", json=RULE, headers=editor).status_code == 201
    assert [x["name"] for x in shttp.get("/api/v1/rules", headers=viewer).json()["rules"]] == [
        "cpu high"]
    assert shttp.get("/api/v1/rules", headers=bearer("globex", "admin")).json() == {"rules": []}
    audit = shttp.get("/api/v1/audit", headers=bearer("acme", "admin")).json()
    assert any("/api/v1/rules" in str(e) for e in audit["entries"]), audit


def test_who_acknowledges_is_the_token_subject(secure_components: Components) -> None:
    c = secure_components
    c.alerting.start()
    try:
        with Server(c) as s, httpx.Client(base_url=s.url, timeout=30) as h:
            ed = bearer("acme", "editor")
            h.post("/api/v1/channels", json={"name": "ops", "type": "websocket"}, headers=ed)
            h.post("/api/v1/rules", json=RULE, headers=ed)
            now = int(time.time())
            assert h.post("/write?precision=s", content=f"cpu,host=a value=95 {now}",
                          headers=ed).status_code == 204
            h.post("/write?precision=s", content=f"cpu,host=a value=95 {now}",
                   headers=bearer("globex", "editor"))
            h.post("/api/v1/rules", json={**RULE, "metric": "cpu_value", "channels": []},
                   headers=bearer("globex", "editor"))

            def firing() -> list[dict[str, object]]:
                alerts: list[dict[str, object]] = h.get(
                    "/api/v1/alerts", headers=ed).json()["alerts"]
                return alerts

            assert firing() == []  # the metric is cpu_value; acme's rule watches "cpu"
            h.put(f"/api/v1/rules/{h.get('/api/v1/rules', headers=ed).json()['rules'][0]['id']}",
                  json={**RULE, "metric": "cpu_value"}, headers=ed)
            h.post("/write?precision=s", content=f"cpu,host=a value=96 {now + 1}", headers=ed)
            wait_until(firing)
            [a] = firing()
            r = h.post(f"/api/v1/alerts/{a['id']}/acknowledge",
                       json={"by": "someone else", "comment": "mine"}, headers=ed)
            assert r.json()["acknowledged_by"] == "editor@acme"
            other = bearer("globex", "editor")
            assert h.post(f"/api/v1/alerts/{a['id']}/resolve", headers=other).status_code == 404
    finally:
        c.alerting.close()
