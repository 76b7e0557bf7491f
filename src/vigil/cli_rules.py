"""``vigil rules``: test rules against given series, replay them over stored history;
registered by ``vigil.cli``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from vigil.alerting import rules_file
from vigil.alerting.replay import run_rule_tests
from vigil.client import Client
from vigil.core.errors import InvalidInput
from vigil.core.timeutil import format_ms

rules_app = typer.Typer(help="Alert rules: unit tests and replay over stored history.",
                        no_args_is_help=True)
out = Console()
err = Console(stderr=True)

FileArg = Annotated[Path, typer.Argument(help="TOML rules file (channels, rules, tests).")]


def _load(path: Path) -> rules_file.RulesFile:
    try:
        return rules_file.load(path)
    except InvalidInput as e:
        err.print(f"[red]{path}:[/] {e}")
        raise typer.Exit(2) from e


@rules_app.command("test")
def test(file: FileArg) -> None:
    """Run the file's [[tests]]: at each expect.at_s the alerts firing must be exactly
    those listed. Exits 1 if any test fails, 2 if the file is invalid."""
    rf = _load(file)
    try:
        results = run_rule_tests(rf.rules, rf.tests)
    except InvalidInput as e:
        err.print(f"[red]{file}:[/] {e}")
        raise typer.Exit(2) from e
    for r in results:
        out.print(("[green]PASS[/] " if r.ok else "[red]FAIL[/] ") + r.name)
        for f in r.failures:
            out.print(f"     {f}")
    failed = sum(not r.ok for r in results)
    out.print(f"{len(rf.rules)} rules, {len(rf.channels)} channels valid; "
              f"{len(results) - failed} of {len(results)} tests passed")
    if failed:
        raise typer.Exit(1)


def _backfill(body: dict[str, Any], url: str | None, data_dir: str | None) -> Any:
    if url:
        with Client(url) as client:
            return client.post("/api/v1/rules/backfill", body)
    from vigil.cli import _open_components, _settings

    settings = _settings(None, data_dir=data_dir)
    c = _open_components(settings)
    try:
        return c.alerting.backfill_request(settings.default_tenant, body)
    finally:
        c.close()


@rules_app.command("backfill")
def backfill(
    rule: Annotated[str, typer.Argument(help="Rule id (of the server or data dir), or a "
                                             "rule name in --file.")],
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Take the rule from "  # noqa: UP045
                                                 "this rules file instead.")] = None,
    start: Annotated[Optional[str], typer.Option(help="RFC 3339 or epoch s (default: 24 h "  # noqa: UP045
                                                 "before end).")] = None,
    end: Annotated[Optional[str], typer.Option(help="Default: now.")] = None,  # noqa: UP045
    step: Annotated[float, typer.Option("--step", help="Evaluation step, seconds.")] = 10.0,
    url: Annotated[Optional[str], typer.Option(help="A running server, e.g. "  # noqa: UP045
                                               "http://127.0.0.1:9470.")] = None,
    data_dir: Annotated[Optional[str], typer.Option("--data-dir")] = None,  # noqa: UP045
) -> None:
    """When RULE would have fired over the stored samples (nothing is stored or sent)."""
    body: dict[str, Any] = {"start": start, "end": end, "step_s": step}
    if file is not None:
        docs = [r.doc for r in _load(file).rules if r.name == rule or r.id == rule]
        if not docs:
            err.print(f"[red]no rule {rule!r} in {file}[/]")
            raise typer.Exit(2)
        body["rule"] = dict(docs[0] or {})
    else:
        body["rule_id"] = rule
    body = {k: v for k, v in body.items() if v is not None}
    doc = _backfill(body, url, data_dir)
    table = Table(title=f"{doc['rule']['name']}: {len(doc['alerts'])} alerts over "
                        f"{doc['series']} series, {doc['samples']:,} samples")
    for col in ("fired (UTC)", "resolved (UTC)", "value", "labels"):
        table.add_column(col)
    def when(ms: int) -> str:
        return format_ms(ms)[:19].replace("T", " ")

    for a in doc["alerts"]:
        table.add_row(when(a["fired_ms"]),
                      when(a["resolved_ms"]) if a["resolved_ms"] else "still firing",
                      f"{a['value']:.6g}",
                      ",".join(f"{k}={v}" for k, v in a["labels"].items()))
    out.print(table)
