"""The ``vigil`` command."""

from __future__ import annotations

import importlib.abc
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from vigil import config
from vigil.client import Client
from vigil.config import ConfigError, Settings
from vigil.core.errors import VigilError
from vigil.core.logs import setup_logging

if TYPE_CHECKING:
    from vigil.app import Components

app = typer.Typer(help="Vigil: real-time analytics and monitoring.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
err = Console(stderr=True)
out = Console()

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config file.")]  # noqa: UP045
DataDirOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--data-dir", help="Data directory (default ./vigil-data).")]
UrlOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--url", help="Talk to a running server (e.g. http://127.0.0.1:9470) instead of opening "
    "the data directory.")]


def _settings(config_path: Path | None, **overrides: Any) -> Settings:
    try:
        return config.load(config_path, overrides=overrides)
    except ConfigError as e:
        err.print(f"[red]config error:[/] {e}")
        raise typer.Exit(2) from e


def _open_components(settings: Settings) -> Components:
    from vigil.app import build

    try:
        return build(settings)
    except Exception as e:  # DuckDB refuses a file another process holds
        if "lock" in str(e).lower():
            err.print(f"[red]{settings.data_dir} is in use by a running server[/]; "
                      "pass --url http://127.0.0.1:9470 to talk to it instead")
            raise typer.Exit(1) from e
        raise


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not needed by pyarrow's conversions here")


def _pyarrow_without_pandas() -> None:
    """Let pyarrow settle, once per process, that pandas is absent for the checks it makes
    on every conversion (``pa.array``, ``to_numpy``, ...): otherwise the first one imports
    pandas, ≈ 44 MB resident for the server's life, though no Vigil path hands pyarrow a
    pandas object. pyarrow records a failed optional import and does not retry it; an
    explicit pandas call (``to_pandas``, ``from_pandas``) still imports pandas then, and
    the analytics that need pandas (statsmodels) import it on first use as before."""
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(blocker)


def _serve(settings: Settings, demo: bool) -> None:
    _pyarrow_without_pandas()  # before any module makes its first Arrow array
    import uvicorn

    from vigil.api.server import create_app
    from vigil.security.exposure import check_exposure

    setup_logging(settings.log_level, settings.log_format)
    c = _open_components(settings)
    log = logging.getLogger("vigil")
    try:
        warning = check_exposure(settings.host, c.auth.enabled)
    except VigilError as e:
        c.close()
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e
    if warning:
        log.warning(warning)
    stop = threading.Event()
    if demo:
        from vigil.demo_runner import start_demo

        start_demo(c, stop)
    log.info("listening on http://%s:%d (API docs at /docs)", settings.host, settings.port)
    try:
        uvicorn.run(create_app(c), host=settings.host, port=settings.port, log_config=None,
                    access_log=False, ws_per_message_deflate=settings.stream_compression)
    finally:
        stop.set()
        c.close()


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to bind (default 127.0.0.1).")] = None,  # noqa: UP045,E501
    port: Annotated[Optional[int], typer.Option(help="Port (default 9470).")] = None,  # noqa: UP045
    data_dir: DataDirOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Run the server on the embedded store."""
    _serve(_settings(config_path, host=host, port=port, data_dir=data_dir), demo=False)


@app.command()
def demo(
    host: Annotated[Optional[str], typer.Option(help="Address to bind.")] = None,  # noqa: UP045
    port: Annotated[Optional[int], typer.Option(help="Port (default 9470).")] = None,  # noqa: UP045
    data_dir: DataDirOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Run the server with a day of history and a live generator of demo metrics and
    task executions."""
    _serve(_settings(config_path, host=host, port=port, data_dir=data_dir), demo=True)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn(), console=err)


@app.command()
def seed(
    days: Annotated[int, typer.Option(help="Days of history.")] = 30,
    interval: Annotated[str, typer.Option(help="Sample interval.")] = "60s",
    data_dir: DataDirOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Write realistic demo history for 5 tenants (progress bar)."""
    from vigil import demo as demo_data
    from vigil import demo_alerts, demo_tasks
    from vigil.core.timeutil import now_ms, parse_duration_ms
    from vigil.demo_runner import TASKS_PER_HOUR

    settings = _settings(config_path, data_dir=data_dir)
    step = parse_duration_ms(interval, "interval")
    c = _open_components(settings)
    end = now_ms() // step * step
    start = end - days * demo_data.DAY_MS + 3_600_000  # stay inside raw retention
    chunk = demo_data.DAY_MS // 4
    total = tasks = 0
    try:
        with _progress() as progress:
            task = progress.add_task("seeding", total=(end - start) * len(demo_data.TENANTS))
            for tenant in demo_data.TENANTS:
                for lo in range(start, end, chunk):
                    batch = demo_data.generate(tenant, lo, min(lo + chunk, end), step)
                    total += c.pipeline.write_sync(tenant, batch, "seed")
                    tasks += c.tasks.submit(tenant, demo_tasks.generate(
                        tenant, lo, min(lo + chunk, end), TASKS_PER_HOUR, now_ms=end)).result()
                    progress.advance(task, min(chunk, end - lo))
            c.store.refresh_rollups(now_ms())
            for tenant in demo_data.TENANTS:  # after the history: live data fires them
                demo_alerts.install(c.alerting, tenant)
    finally:
        c.close()
    out.print(f"seeded {total:,} samples and {tasks:,} task executions for "
              f"{len(demo_data.TENANTS)} tenants into {settings.data_dir}")


@app.command()
def migrate(
    to: Annotated[Optional[int], typer.Option(help="Target schema version (default: latest).")] = None,  # noqa: UP045,E501
    data_dir: DataDirOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Apply schema migrations up (or down with --to N)."""
    from vigil.app import STORE_FILE
    from vigil.storage.duckdb_store import DuckDBStore
    from vigil.storage.migrations import LATEST

    settings = _settings(config_path, data_dir=data_dir)
    store = DuckDBStore(settings.data_path / STORE_FILE, migrate=False)
    try:
        before = store.schema_version()
        done = store.migrate(LATEST if to is None else to)
    finally:
        store.close()
    for step in done:
        out.print(f"applied {step}")
    out.print(f"schema version {before} -> {LATEST if to is None else to}")


def _query_params(match: list[str] | None, start: str | None, end: str | None,
                  step: str | None, fn: str, q: float | None, group_by: str | None,
                  window: str | None) -> dict[str, Any]:
    return {"match": match or [], "start": start, "end": end, "step": step, "fn": fn,
            "q": None if q is None else str(q), "group_by": group_by, "window": window}


def _run_query(name: str, params: dict[str, Any], url: str | None, settings: Settings) -> Any:
    """The query result as the JSON document of /api/v1/query."""
    if url:
        with Client(url, token=settings.client_token or None) as client:
            match = params.pop("match")
            return client.query(name, match=match, **params)
    from vigil.api.responses import result_json
    from vigil.core.timeutil import now_ms
    from vigil.query.model import Query

    c = _open_components(settings)
    try:
        return result_json(c.engine.run(settings.default_tenant,
                                        Query.from_params({"name": name, **params}, now_ms())))
    finally:
        c.close()


MatchOpt = Annotated[Optional[list[str]], typer.Option("--match", "-m", help="label=value, !=, =~, !~ (repeatable).")]  # noqa: UP045,E501


@app.command()
def query(
    name: Annotated[str, typer.Argument(help="Metric name.")],
    match: MatchOpt = None,
    start: Annotated[Optional[str], typer.Option(help="RFC 3339 or epoch s.")] = None,  # noqa: UP045
    end: Annotated[Optional[str], typer.Option(help="RFC 3339 or epoch s.")] = None,  # noqa: UP045
    step: Annotated[Optional[str], typer.Option(help="e.g. 5m.")] = None,  # noqa: UP045
    fn: Annotated[str, typer.Option(help="avg sum min max count last rate increase quantile.")] = "avg",  # noqa: E501
    q: Annotated[Optional[float], typer.Option(help="Quantile for fn=quantile.")] = None,  # noqa: UP045
    group_by: Annotated[Optional[str], typer.Option(help="Labels, comma-separated.")] = None,  # noqa: UP045
    window: Annotated[Optional[str], typer.Option(help="Rolling window.")] = None,  # noqa: UP045
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Run a query and print it as a table."""
    from vigil.core.timeutil import format_ms

    settings = _settings(config_path, data_dir=data_dir)
    doc = _run_query(name, _query_params(match, start, end, step, fn, q, group_by, window), url,
                     settings)
    table = Table(title=f"{name} ({fn}, tier {doc['tier']})")
    table.add_column("labels")
    table.add_column("time")
    table.add_column("value", justify="right")
    for s in doc["series"]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s["labels"].items())) or "{}"
        for t, v in s["points"]:
            table.add_row(labels, format_ms(int(t)), f"{v:.6g}")
    out.print(table)


@app.command("export")
def export_cmd(
    name: Annotated[str, typer.Argument(help="Metric name.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, json or parquet.")] = "csv",
    match: MatchOpt = None,
    start: Annotated[Optional[str], typer.Option(help="RFC 3339 or epoch s.")] = None,  # noqa: UP045
    end: Annotated[Optional[str], typer.Option(help="RFC 3339 or epoch s.")] = None,  # noqa: UP045
    step: Annotated[Optional[str], typer.Option(help="e.g. 5m.")] = None,  # noqa: UP045
    fn: Annotated[str, typer.Option(help="Aggregation.")] = "avg",
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Export a query result as CSV, JSON or Parquet."""
    if fmt not in ("csv", "json", "parquet"):
        err.print("[red]--format must be csv, json or parquet[/]")
        raise typer.Exit(2)
    settings = _settings(config_path, data_dir=data_dir)
    params = _query_params(match, start, end, step, fn, None, None, None)
    if url:
        with Client(url, token=settings.client_token or None) as client:
            m = params.pop("match")
            data = client.export(name, fmt, match=m, **params)
    else:
        from vigil.api.responses import export
        from vigil.core.timeutil import now_ms
        from vigil.query.model import Query

        c = _open_components(settings)
        try:
            result = c.engine.run(settings.default_tenant,
                                  Query.from_params({"name": name, **params}, now_ms()))
        finally:
            c.close()
        data = export(result, fmt)
    output.write_bytes(data)
    out.print(f"wrote {len(data):,} bytes to {output}")


def _chunks(path: Path, lines_per_chunk: int) -> Iterator[tuple[bytes, int]]:
    """The file in chunks of whole lines, with the bytes each chunk covers."""
    with path.open("rb") as f:
        while True:
            lines = f.readlines(lines_per_chunk * 200)
            if not lines:
                return
            data = b"".join(lines)
            yield data, len(data)


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="Line protocol (.lp, .txt) or JSON lines (.jsonl).", exists=True, dir_okay=False)],  # noqa: E501
    precision: Annotated[str, typer.Option(help="Line-protocol timestamp precision.")] = "ns",
    url: UrlOpt = None,
    data_dir: DataDirOpt = None,
    config_path: ConfigOpt = None,
) -> None:
    """Import a file of samples (progress bar). Each chunk is atomic."""
    from vigil.core.timeutil import now_ms
    from vigil.ingest.json_samples import parse_samples
    from vigil.ingest.line_protocol import parse_line_protocol

    settings = _settings(config_path, data_dir=data_dir)
    is_json = file.suffix.lower() in (".jsonl", ".ndjson", ".json")
    client: Client | None = None
    c: Components | None = None
    if url:
        client = Client(url, token=settings.client_token or None)
    else:
        c = _open_components(settings)
    total = 0
    try:
        with _progress() as progress:
            task = progress.add_task(f"importing {file.name}", total=file.stat().st_size)
            for data, size in _chunks(file, 50_000):
                if is_json:
                    items = [json.loads(line) for line in data.splitlines() if line.strip()]
                    if client:
                        client.write(items)
                        total += len(items)
                    else:
                        assert c is not None
                        batch = parse_samples(items, limits=c.limits, now_ms=now_ms())
                        total += c.pipeline.write_sync(settings.default_tenant, batch, "import")
                elif client:
                    client.write_lines(data, precision)
                else:
                    assert c is not None
                    batch = parse_line_protocol(data, precision,  # type: ignore[arg-type]
                                                limits=c.limits, now_ms=now_ms())
                    total += c.pipeline.write_sync(settings.default_tenant, batch, "import")
                progress.advance(task, size)
    except VigilError as e:
        err.print(f"[red]import stopped:[/] {e}")
        raise typer.Exit(1) from e
    finally:
        if client:
            client.close()
        if c:
            c.close()
    out.print(f"imported {file}" + (f": {total:,} samples" if total else ""))


def _register_commands() -> None:
    # Their own modules keep this one short; imported here so `vigil --help` lists them.
    from vigil.cli_detect import detect
    from vigil.cli_forecast import forecast_cmd
    from vigil.cli_rules import rules_app
    from vigil.cli_security import register
    from vigil.cli_top import top

    app.command("detect")(detect)
    app.command("forecast")(forecast_cmd)
    app.command("top")(top)
    app.add_typer(rules_app, name="rules")
    register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except VigilError as e:
        err.print(f"[red]error:[/] {e}")
        sys.exit(1)


if __name__ == "__main__":
    main()
