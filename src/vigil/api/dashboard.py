"""The web dashboard: the static files of ``vigil/dashboard/static`` served at ``/`` and
``/ui/``. These routes are public (a page holds no data); the page then calls the API with
the credential the user pasted, or none in open mode."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from vigil.api.auth import PUBLIC

STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"
# Only this origin's scripts, styles and sockets; nothing framed. uPlot sizes its
# elements through inline styles.
_CSP = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")

router = APIRouter(tags=["dashboard"])


# The charting library comes from npm (see the Makefile); a checkout without it gets
# told how to fetch it instead of a page whose charts fail.
_VENDOR = ("uPlot.iife.min.js", "uPlot.min.css")
_NO_VENDOR = """<!doctype html><meta charset="utf-8"><title>Vigil</title>
<h1>The dashboard's charting library is not installed</h1>
<p>It comes from npm when Vigil is installed from a source checkout. Run
<code>make install</code> there, or by hand:</p>
<pre>cd src/vigil/dashboard &amp;&amp; npm ci &amp;&amp; mkdir -p static/vendor &amp;&amp;
cp node_modules/uplot/dist/uPlot.iife.min.js \
   node_modules/uplot/dist/uPlot.min.css static/vendor/</pre>
<p>The API works without it: <a href="/docs">/docs</a>.</p>
"""


@router.get("/", include_in_schema=False, dependencies=[PUBLIC])
async def index() -> Response:
    if not all((STATIC / "vendor" / f).is_file() for f in _VENDOR):
        return HTMLResponse(_NO_VENDOR, status_code=503, headers={"Cache-Control": "no-cache"})
    return FileResponse(STATIC / "index.html", headers={
        "Content-Security-Policy": _CSP, "Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """The index route and the assets under ``/ui/``."""
    app.include_router(router)
    app.mount("/ui", StaticFiles(directory=STATIC, check_dir=False), name="dashboard")
