"""The web dashboard: the static files of ``vigil/dashboard/static`` served at ``/`` and
``/ui/``. These routes are public (a page holds no data); the page then calls the API with
the credential the user pasted, or none in open mode."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from vigil.api.auth import PUBLIC

STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"
# Only this origin's scripts, styles and sockets; nothing framed. uPlot sizes its
# elements through inline styles.
_CSP = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")

router = APIRouter(tags=["dashboard"])


@router.get("/", include_in_schema=False, dependencies=[PUBLIC])
async def index() -> Response:
    return FileResponse(STATIC / "index.html", headers={
        "Content-Security-Policy": _CSP, "Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """The index route and the assets under ``/ui/``."""
    app.include_router(router)
    app.mount("/ui", StaticFiles(directory=STATIC, check_dir=False), name="dashboard")
