"""`cards-api import` and `cards-api export`: JSON Lines through the HTTP API of a running
deployment (`CARDS_URL`, `CARDS_API_KEY`), with a progress bar on a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

import typer
from rich.console import Console

from cards_api.cli.common import app, fail

if TYPE_CHECKING:
    from cards_client import CardsClient


def _client(tenant: UUID) -> CardsClient:
    from cards_client import CardsClient

    try:
        return CardsClient(tenant_id=tenant)
    except ValueError as exc:
        fail(str(exc))


@contextlib.contextmanager
def _api_errors() -> Iterator[None]:
    from cards_client import CardsError

    try:
        yield
    except CardsError as exc:
        fail(str(exc), code=1)


@app.command("import")
def import_cards(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="JSON Lines of cards."),
    ],
    tenant: Annotated[UUID, typer.Option(help="Tenant to import into.")],
) -> None:
    """Import cards from JSON Lines through the API at CARDS_URL (key in CARDS_API_KEY).

    Running an import again creates nothing twice. Bad lines are reported and skipped."""
    from cards_api import transfer

    with _client(tenant) as client, _api_errors():
        if sys.stderr.isatty():
            from rich.progress import Progress

            with Progress(console=Console(stderr=True), transient=True) as progress:
                task = progress.add_task(f"importing {file.name}", total=transfer.count_lines(file))
                report = transfer.import_file(
                    client, file, on_lines=lambda n: progress.advance(task, n)
                )
        else:
            report = transfer.import_file(client, file)
    typer.echo(f"imported {file}: {report.summary()}")
    if report.failed:
        raise typer.Exit(1)


@app.command("export")
def export_cards(
    tenant: Annotated[UUID, typer.Option(help="Tenant to export.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Export every live card as JSON Lines through the API at CARDS_URL (key in CARDS_API_KEY)."""
    from cards_api import transfer

    with _client(tenant) as client, _api_errors():
        out = output.open("w", encoding="utf-8") if output is not None else sys.stdout
        try:
            if output is not None and sys.stderr.isatty():
                from rich.progress import Progress, SpinnerColumn, TextColumn

                columns = (SpinnerColumn(), TextColumn("exported {task.completed} cards"))
                with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
                    task = progress.add_task("export", total=None)
                    count = transfer.export_cards(
                        client, out, on_card=lambda: progress.advance(task)
                    )
            else:
                count = transfer.export_cards(client, out)
        finally:
            if output is not None:
                out.close()
    typer.echo(f"exported {count} cards", err=True)
