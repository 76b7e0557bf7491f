"""The alerts page in Chromium: acknowledge, resolve and silence reach the API; the rule
editor saves a rule and shows the API's 400 message next to the field it names."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Server
from tests.dashboard.conftest import TENANT, shoot


def _alert(seeded: Server, alert_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"{seeded.url}/api/v1/alerts/{alert_id}").json()
    return doc


def test_acknowledge_resolve_and_silence_from_the_list(page: Any, seeded: Server) -> None:
    page.goto(seeded.url + "/#/alerts?state=triggered")
    page.wait_for_selector("#alerts-table button[data-action=ack]")
    shoot(page, "alerts")
    ack = page.locator("#alerts-table button[data-action=ack]").first
    first = ack.get_attribute("data-id") or ""
    ack.click()
    page.wait_for_selector(f'#alerts-table button[data-action=ack][data-id="{first}"]',
                           state="detached")
    doc = _alert(seeded, first)
    assert doc["state"] == "acknowledged" and doc["acknowledged_by"] == "dashboard"

    page.select_option("#al-state", "acknowledged")
    page.click(f'#alerts-table button[data-action=resolve][data-id="{first}"]')
    page.wait_for_selector(f'#alerts-table button[data-id="{first}"]', state="detached")
    assert _alert(seeded, first)["state"] == "resolved"

    page.select_option("#al-state", "triggered")
    silence = page.locator("#alerts-table button[data-action=silence]").first
    target = silence.get_attribute("data-id") or ""
    silence.click()
    page.wait_for_selector("#silences-table tbody tr")
    labels = _alert(seeded, target)["labels"]
    silences = httpx.get(seeded.url + "/api/v1/silences").json()["silences"]
    assert any(f"host={labels['host']}" in s["matchers"] for s in silences)
    row = page.locator("#silences-table tbody tr", has_text=f"host={labels['host']}")
    assert row.count() >= 1
    page.wait_for_function(  # the next poll shows the alert as silenced
        "id => [...document.querySelectorAll('#alerts-table tr')].some(tr =>"
        " tr.querySelector(`button[data-id=\"${id}\"]`) && tr.textContent.includes('silenced'))",
        arg=target, timeout=15_000)
    listed = httpx.get(seeded.url + "/api/v1/alerts", params={"state": "triggered"}).json()
    assert next(a for a in listed["alerts"] if a["id"] == target)["silenced"] is True


def test_rule_editor_shows_the_api_message_next_to_the_field(page: Any, seeded: Server,
                                                             console: Any) -> None:
    console.allow("status of 400")
    page.goto(seeded.url + "/#/alerts")
    page.wait_for_selector("#rules-table tbody tr")
    before = len(seeded.components.alerting.rules(TENANT))
    page.fill("#rule-name", "disk nearly full")
    page.fill("#rule-metric", "memory_used_bytes")
    page.fill("#rule-condition-op", ">>")
    page.fill("#rule-condition-threshold", "9000000000")
    page.click("#rule-save")
    err = page.locator('[data-error-for="condition.op"]')
    err.wait_for()
    page.wait_for_function(
        "() => document.querySelector('[data-error-for=\"condition.op\"]').textContent")
    body = {"name": "disk nearly full", "metric": "memory_used_bytes", "severity": "high",
            "condition": {"type": "threshold", "op": ">>", "threshold": 9e9}}
    problem = httpx.post(seeded.url + "/api/v1/rules", json=body).json()["errors"][0]
    assert problem["field"] == "condition.op"
    assert err.text_content() == problem["reason"]
    assert len(seeded.components.alerting.rules(TENANT)) == before  # nothing stored
    shoot(page, "rule-editor")

    page.fill("#rule-condition-op", ">")
    page.fill("#rule-group_by", "host")
    page.click("#rule-save")
    page.wait_for_selector("#rules-table tbody tr:has-text('disk nearly full')")
    assert err.text_content() == ""
    saved = [r for r in seeded.components.alerting.rules(TENANT)
             if r["name"] == "disk nearly full"]
    assert saved and saved[0]["condition"] == {"type": "threshold", "op": ">",
                                               "threshold": 9e9}
    assert saved[0]["group_by"] == ["host"]

    # edit it: a bad threshold is named, then a good one replaces the rule
    page.click("#rules-table tbody tr:has-text('disk nearly full') button[data-action=edit]")
    assert page.input_value("#rule-name") == "disk nearly full"
    page.fill("#rule-condition-threshold", "lots")
    page.click("#rule-save")
    page.wait_for_function(
        "() => document.querySelector('[data-error-for=\"condition.threshold\"]').textContent")
    page.fill("#rule-condition-threshold", "8000000000")
    page.click("#rule-save")
    page.wait_for_selector("#rules-table tbody tr:has-text('8000000000')")
    rule = next(r for r in seeded.components.alerting.rules(TENANT)
                if r["name"] == "disk nearly full")
    assert rule["condition"]["threshold"] == 8e9 and rule["id"] == saved[0]["id"]
