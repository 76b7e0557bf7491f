"""Alerting routes: rules, channels, alerts and their lifecycle, silences, incidents.

Handlers are plain ``def``: FastAPI runs them on its thread pool, so the store writes
they make never block the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from starlette.responses import Response

from vigil.alerting.model import SEVERITIES, STATES
from vigil.alerting.service import AlertingService
from vigil.api.auth import require
from vigil.api.deps import components, principal, tenant
from vigil.api.responses import json_response
from vigil.app import Components
from vigil.core.errors import InvalidInput, NotFound, Problem
from vigil.core.timeutil import parse_time_ms
from vigil.security.scopes import Principal

router = APIRouter(prefix="/api/v1", tags=["alerting"], dependencies=[require("alerts:read")])
WRITE = [require("alerts:write")]
Tenant = Annotated[str, Depends(tenant)]
Who = Annotated[Principal, Depends(principal)]
JsonBody = Annotated[dict[str, Any], Body()]


async def service(c: Annotated[Components, Depends(components)]) -> AlertingService:
    return c.alerting


Alerting = Annotated[AlertingService, Depends(service)]


def _no_content() -> Response:
    return Response(status_code=204)


# ---------------------------------------------------------------------- rules
@router.get("/rules", summary="Alert rules")
def list_rules(a: Alerting, t: Tenant) -> Response:
    return json_response({"rules": a.rules(t)})


@router.post("/rules", status_code=201, dependencies=WRITE, summary="Create an alert rule")
def create_rule(a: Alerting, t: Tenant, body: JsonBody) -> Response:
    """Threshold, change, absence, anomaly or forecast condition; see docs/alerting.md."""
    return json_response(dict(a.put_rule(t, body).doc or {}), status=201)


@router.post("/rules/backfill", dependencies=[require("alerts:read", audit=False)],
             summary="When a rule would have fired over stored history")
def backfill(a: Alerting, t: Tenant, body: JsonBody) -> Response:
    """``{"rule_id": "…"}`` or ``{"rule": {…a rule document…}}``, with ``start``, ``end``
    (RFC 3339 or epoch s; default the last 24 h) and ``step_s`` (evaluation step, default
    10). A dry run: nothing is stored or notified."""
    return json_response(a.backfill_request(t, body))


@router.get("/rules/{rule_id}", summary="One alert rule")
def get_rule(a: Alerting, t: Tenant, rule_id: str) -> Response:
    return json_response(dict(a.rule(t, rule_id).doc or {}))


@router.put("/rules/{rule_id}", dependencies=WRITE, summary="Replace an alert rule")
def replace_rule(a: Alerting, t: Tenant, rule_id: str, body: JsonBody) -> Response:
    return json_response(dict(a.put_rule(t, body, rule_id, create=False).doc or {}))


@router.delete("/rules/{rule_id}", status_code=204, summary="Delete a rule (its alerts resolve)",
             dependencies=WRITE)
def delete_rule(a: Alerting, t: Tenant, rule_id: str) -> Response:
    a.delete_rule(t, rule_id)
    return _no_content()


@router.get("/rules/{rule_id}/explain",
            summary="Why a rule fires or not: each series' last evaluation, recent transitions")
def explain_rule(a: Alerting, t: Tenant, rule_id: str) -> Response:
    return json_response(a.explain(t, rule_id))


# ---------------------------------------------------------------------- channels
@router.get("/channels", summary="Notification channels (secrets redacted)")
def list_channels(a: Alerting, t: Tenant) -> Response:
    return json_response({"channels": a.channels(t)})


@router.post("/channels", status_code=201, summary="Create a notification channel",
             dependencies=WRITE)
def create_channel(a: Alerting, t: Tenant, body: JsonBody) -> Response:
    """Types: webhook (Alertmanager v4 payload), slack, email, websocket."""
    return json_response(a.put_channel(t, body).public_dict(), status=201)


@router.get("/channels/{name}", summary="One notification channel (secrets redacted)")
def get_channel(a: Alerting, t: Tenant, name: str) -> Response:
    ch = a.channel(t, name)
    if ch is None:
        raise NotFound(f"no channel {name!r}")
    return json_response(ch.public_dict())


@router.put("/channels/{name}", dependencies=WRITE, summary="Replace a notification channel")
def replace_channel(a: Alerting, t: Tenant, name: str, body: JsonBody) -> Response:
    return json_response(a.put_channel(t, body, name, create=False).public_dict())


@router.delete("/channels/{name}", status_code=204, summary="Delete an unused channel",
             dependencies=WRITE)
def delete_channel(a: Alerting, t: Tenant, name: str) -> Response:
    a.delete_channel(t, name)
    return _no_content()


# ---------------------------------------------------------------------- alerts
@router.get("/alerts", summary="Alerts, newest change first")
def list_alerts(
    a: Alerting, t: Tenant,
    state: Annotated[str | None, Query(description="triggered, acknowledged or resolved")]
    = None,
    severity: Annotated[str | None, Query(description="low, medium, high or critical")] = None,
    rule: Annotated[str | None, Query(description="rule id or name")] = None,
    since: Annotated[str | None, Query(description="changed at or after (RFC 3339 or "
                                                   "epoch s)")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> Response:
    for name, value, allowed in (("state", state, STATES), ("severity", severity, SEVERITIES)):
        if value is not None and value not in allowed:
            raise InvalidInput(Problem(f"{value!r} is not one of {', '.join(allowed)}",
                                       field=name))
    since_ms = parse_time_ms(since, "since") if since else None
    return json_response({"alerts": a.alerts(t, state=state, severity=severity, rule=rule,
                                             since_ms=since_ms, limit=limit)})


@router.get("/alerts/{alert_id}", summary="One alert")
def get_alert(a: Alerting, t: Tenant, alert_id: str) -> Response:
    return json_response(a.alert(t, alert_id))


@router.get("/alerts/{alert_id}/history", summary="Every transition of an alert, oldest first")
def alert_history(a: Alerting, t: Tenant, alert_id: str) -> Response:
    return json_response({"history": a.history(t, alert_id)})


def _who(who: Principal, body: dict[str, Any] | None) -> tuple[str, str | None]:
    """The authenticated subject; with no authentication (open mode) the body's ``by``."""
    body = body or {}
    by, comment = body.get("by", "anonymous"), body.get("comment")
    if not isinstance(by, str) or not by:
        raise InvalidInput(Problem("must be a non-empty string", field="by"))
    if who.credential != "open":
        by = who.subject
    if comment is not None and not isinstance(comment, str):
        raise InvalidInput(Problem("must be a string", field="comment"))
    return by, comment


OptionalBody = Annotated[dict[str, Any] | None, Body()]


@router.post("/alerts/{alert_id}/acknowledge", summary="Acknowledge a triggered alert",
             dependencies=WRITE)
def acknowledge(a: Alerting, t: Tenant, who: Who, alert_id: str, body: OptionalBody = None
                ) -> Response:
    """Body (optional): ``{"comment": "looking"}``; who is the credential's subject (with
    authentication off, ``"by"`` in the body)."""
    by, comment = _who(who, body)
    return json_response(a.acknowledge(t, alert_id, by, comment).as_dict())


@router.post("/alerts/{alert_id}/resolve", dependencies=WRITE, summary="Resolve an alert by hand")
def resolve(a: Alerting, t: Tenant, who: Who, alert_id: str, body: OptionalBody = None
            ) -> Response:
    """It fires again only after its condition has cleared and breached anew."""
    by, comment = _who(who, body)
    return json_response(a.resolve(t, alert_id, by, comment).as_dict())


# ---------------------------------------------------------------------- silences
@router.get("/silences", summary="Silences")
def list_silences(a: Alerting, t: Tenant) -> Response:
    return json_response({"silences": a.silences(t)})


@router.post("/silences", status_code=201, summary="Mute notifications of matching alerts",
             dependencies=WRITE)
def create_silence(a: Alerting, t: Tenant, body: JsonBody) -> Response:
    """``{"matchers": ["host=web-1"], "duration_s": 3600, "author": "alice",
    "comment": "maintenance"}`` (or ``starts_at``/``ends_at``)."""
    return json_response(a.add_silence(t, body).as_dict(), status=201)


@router.delete("/silences/{silence_id}", status_code=204, summary="Expire a silence",
             dependencies=WRITE)
def delete_silence(a: Alerting, t: Tenant, silence_id: str) -> Response:
    a.delete_silence(t, silence_id)
    return _no_content()


# ---------------------------------------------------------------------- views
@router.get("/incidents", summary="Correlated active alerts summarised as incidents")
def list_incidents(a: Alerting, t: Tenant) -> Response:
    return json_response({"incidents": a.incidents(t)})


@router.get("/dead-letters", summary="Notifications that failed after their last retry")
def list_dead_letters(a: Alerting, t: Tenant,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> Response:
    return json_response({"dead_letters": a.dead_letters(t, limit)})
