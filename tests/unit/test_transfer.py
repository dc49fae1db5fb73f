"""Import reports bad lines without stopping, ignores fields the server owns, and derives each
batch's Idempotency-Key from its content so a rerun creates nothing twice."""

from __future__ import annotations

import json
import uuid

import pytest

from cards_api import transfer


def line(**fields: object) -> str:
    return json.dumps({"card_type": "voice", "title": "T", "content": {}, **fields})


def test_server_owned_fields_are_ignored_so_an_export_imports_as_is() -> None:
    card = transfer.parse_line(line(id=str(uuid.uuid4()), version=3, usage_count=7, tenant_id="x"))
    assert card == {"card_type": "voice", "title": "T", "content": {}, "tags": []}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        (line(card_type="robot"), "card_type:"),
        (line(title=""), "title:"),
        (line(extra="field"), "extra: Extra inputs are not permitted"),
        (line(content={"x": "y" * 40_000}), "content: must be at most 32768 bytes"),
    ],
)
def test_bad_lines_say_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="^" + reason.replace("(", r"\(")):
        transfer.parse_line(text)


def test_batches_hold_100_cards_and_skip_bad_and_blank_lines() -> None:
    report = transfer.ImportReport()
    lines = [line(title=f"c{i}") for i in range(250)]
    lines[10] = "oops"
    lines[20] = "   "
    batches = list(transfer._batches(lines, report))
    assert [len(b.cards) for b in batches] == [100, 100, 48]
    assert batches[0].lines[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]
    assert report.failed == [transfer.LineError(11, "not valid JSON")]


def test_a_repeated_external_ref_starts_a_new_batch() -> None:
    report = transfer.ImportReport()
    lines = [
        line(external_ref="a", title="1"),
        line(external_ref="b"),
        line(external_ref="a", title="2"),
    ]
    batches = list(transfer._batches(lines, report))
    assert [[c["title"] for c in b.cards] for b in batches] == [["1", "T"], ["2"]]


def test_batch_keys_depend_on_tenant_and_content_only() -> None:
    tenant = uuid.uuid4()
    cards = [transfer.parse_line(line())]
    assert transfer.batch_key(tenant, cards) == transfer.batch_key(tenant, [dict(cards[0])])
    assert transfer.batch_key(tenant, cards) != transfer.batch_key(uuid.uuid4(), cards)
    other = [transfer.parse_line(line(title="Other"))]
    assert transfer.batch_key(tenant, cards) != transfer.batch_key(tenant, other)
    assert len(transfer.batch_key(tenant, cards)) <= 255


def test_the_summary_names_failed_lines() -> None:
    report = transfer.ImportReport(created=3, updated=1, already_imported=2)
    report.failed.append(transfer.LineError(7, "not valid JSON"))
    assert report.summary() == (
        "created 3, updated 1, already imported 2, failed 1 (line 7: not valid JSON)"
    )
