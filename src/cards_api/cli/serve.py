"""`cards-api serve` and `cards-api migrate`: process supervision around uvicorn.

`serve` migrates, creates the demo tenant of a fresh embedded database, prepares the metrics
folder the workers share, runs uvicorn (one process, or a supervisor and N workers), and on
SIGTERM/SIGINT returns normally so that an embedded PostgreSQL is stopped last.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from types import FrameType
from typing import Annotated

import typer

from cards_api.cli.common import (
    app,
    database_errors,
    fail,
    load,
    migrate_db,
    open_db,
    stdout,
)
from cards_api.db import migrate as migrations
from cards_api.demo import ensure_demo_tenant
from cards_api.logs import configure_logging
from cards_api.settings import Settings


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8002,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
) -> None:
    """Apply pending migrations, then serve the HTTP API."""
    settings = load()
    configure_logging(settings.log_level, settings.log_format)
    # A fresh folder where every worker writes its metrics (so counts start from zero and a
    # scrape of any worker sums them all). prometheus_client reads it when first imported, so
    # it is set before anything imports the metrics (the CLI's own imports never do).
    metrics_dir = tempfile.mkdtemp(prefix="cards-api-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        _serve(settings, host, port, workers)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    # Returning lets the embedded PostgreSQL stop (at exit), after the last request finished.


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    from cards_api.search import tokenizer
    from cards_api.search.embedder import check_embedder

    try:  # a missing model stops the start here, in one line, before any worker starts
        check_embedder(settings)
        tokenizer.check()
    except RuntimeError as exc:
        fail(str(exc))
    database = open_db(settings)
    migrate_db(database, settings)
    if database.embedded is not None:
        with database_errors():
            demo = ensure_demo_tenant(settings.data_dir, database.dsn, settings)
        if demo is not None:
            stdout.print(
                "Demo tenant created. Its key is shown only now; "
                "`cards-api keys create` makes more.\n"
                f"  export CARDS_TENANT_ID={demo.tenant_id}\n"
                f"  export CARDS_API_KEY={demo.key}"
            )
    # Worker processes read their settings from the environment: hand them this database.
    os.environ["DATABASE_URL"] = database.pool_dsn
    served = settings.model_copy(update={"database_url": database.pool_dsn})
    _run_uvicorn(served, host, port, workers)


def _run_uvicorn(settings: Settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    if workers == 1:
        from cards_api.app import create_app

        target: object = create_app(settings)
    else:
        target = "cards_api.app:create_app"
    _exit_cleanly_on_signals()
    with contextlib.suppress(_Shutdown):
        uvicorn.run(
            target,  # type: ignore[arg-type]
            factory=workers > 1,
            workers=workers if workers > 1 else None,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,  # nothing reads the client address; X-Forwarded-* is ignored
            timeout_graceful_shutdown=30,
            loop="uvloop",
            http="cards_api.http_protocol:GuardedHttpToolsProtocol",
        )


class _Shutdown(Exception):
    """Raised by our signal handler once uvicorn has finished its graceful shutdown."""


def _exit_cleanly_on_signals() -> None:
    """uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the handler
    that was installed before it started. With Python's defaults that would kill the process
    (SIGTERM) or print a KeyboardInterrupt traceback (SIGINT), and the embedded PostgreSQL
    would never be stopped. This handler turns the re-raised signal into a normal exit."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Shutdown

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@app.command()
def migrate() -> None:
    """Apply pending migrations and exit."""
    settings = load()
    configure_logging(settings.log_level, settings.log_format)
    database = open_db(settings)
    migrate_db(database, settings)
    typer.echo(f"database schema at revision {migrations.SCHEMA_HEAD}")
