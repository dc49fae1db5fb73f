"""`cards-api import` and `export`: cards as JSON Lines, through any deployment's HTTP API.

Both go through the Python client (`cards_client`), so they work against a remote deployment
exactly as the onboarding service does, with its retries.

Import rules:

- each line is one card: `card_type`, `title`, `content`, optional `tags` and `external_ref`;
  fields the server owns (`id`, `tenant_id`, `version`, `usage_count`, timestamps) are ignored,
  so an export can be imported as it is;
- a line is checked with the server's own rules first; a bad line is reported with its number
  and reason and skipped, never sent;
- valid cards go in batches of up to 100, each with an Idempotency-Key derived from the tenant
  and the batch's content, so running an interrupted import again replays the batches that
  already landed instead of creating them twice (within `CARDS_IDEMPOTENCY_TTL`; cards with an
  `external_ref` are upserted and stay single whenever the import runs again);
- a card whose `(card_type, external_ref)` already appears in the batch being built starts a new
  batch, so later lines update earlier ones, in file order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from uuid import UUID

from pydantic import ValidationError

from cards_api import limits
from cards_api.domain.schemas import CardCreate
from cards_client import CardsClient, ValidationFailed

SERVER_OWNED = frozenset(
    {"id", "tenant_id", "version", "usage_count", "last_used_at", "created_at", "updated_at"}
)
EXPORT_FIELDS = ("id", "card_type", "title", "content", "tags", "external_ref")


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    reason: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    already_imported: int = 0
    failed: list[LineError] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"created {self.created}, updated {self.updated}, "
            f"already imported {self.already_imported}, failed {len(self.failed)}"
        )
        if self.failed:
            text += " (" + "; ".join(f"line {e.line}: {e.reason}" for e in self.failed) + ")"
        return text


@dataclass
class _Batch:
    cards: list[dict[str, Any]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    refs: set[tuple[str, str]] = field(default_factory=set)


def parse_line(text: str) -> dict[str, Any]:
    """The card a line describes, checked with the server's rules; ValueError says why not."""
    try:
        raw = json.loads(text)
    except ValueError:
        raise ValueError("not valid JSON") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    try:
        card = CardCreate.model_validate({k: v for k, v in raw.items() if k not in SERVER_OWNED})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "card"
        raise ValueError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None
    return card.model_dump(mode="json", exclude_none=True)


def _batches(lines: Iterable[str], report: ImportReport) -> Iterator[_Batch]:
    batch = _Batch()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            card = parse_line(text)
        except ValueError as exc:
            report.failed.append(LineError(number, str(exc)))
            continue
        ref = (card["card_type"], card["external_ref"]) if "external_ref" in card else None
        if len(batch.cards) == limits.MAX_BATCH_CARDS or (ref is not None and ref in batch.refs):
            yield batch
            batch = _Batch()
        batch.cards.append(card)
        batch.lines.append(number)
        if ref is not None:
            batch.refs.add(ref)
    if batch.cards:
        yield batch


def batch_key(tenant_id: UUID, cards: list[dict[str, Any]]) -> str:
    """The same batch of the same file always gets the same key, so a rerun replays it."""
    canonical = json.dumps(cards, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{tenant_id}\n{canonical}".encode()).hexdigest()
    return f"import-{digest[:48]}"


def import_file(
    client: CardsClient, path: Path, *, on_lines: Callable[[int], None] = lambda n: None
) -> ImportReport:
    """Import `path` into the client's tenant; `on_lines(n)` reports progress in lines."""
    assert client.tenant_id is not None
    report = ImportReport()
    done = 0
    with path.open(encoding="utf-8") as lines:
        for batch in _batches(lines, report):
            try:
                result = client.create_cards(
                    batch.cards, idempotency_key=batch_key(client.tenant_id, batch.cards)
                )
            except ValidationFailed as exc:
                reason = exc.errors[0]["msg"] if exc.errors else exc.message
                report.failed.extend(LineError(line, f"refused: {reason}") for line in batch.lines)
            else:
                if result.replayed:
                    report.already_imported += len(result.cards)
                else:
                    report.created += result.created
                    report.updated += result.updated
            on_lines(batch.lines[-1] - done)
            done = batch.lines[-1]
    return report


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def export_cards(
    client: CardsClient, out: TextIO, *, on_card: Callable[[], None] = lambda: None
) -> int:
    """Write every live card of the client's tenant as one JSON object per line."""
    exported = 0
    for card in client.list_cards():
        record = card.model_dump(mode="json", include=set(EXPORT_FIELDS))
        out.write(json.dumps({k: record[k] for k in EXPORT_FIELDS}, ensure_ascii=False) + "\n")
        exported += 1
        on_card()
    return exported
