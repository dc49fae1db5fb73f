"""The contract's limits are enforced at the edge: content up to 32 KiB, no text PostgreSQL cannot
store, a PATCH that changes something, a retrieve with a filter, batches of 1-100 cards."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cards_api import limits
from cards_api.domain.schemas import BatchCreateRequest, CardCreate, CardPatch, RetrieveRequest


def _card(**fields: object) -> dict[str, object]:
    return {"card_type": "company", "title": "T", "content": {}, **fields}


def test_content_at_the_limit_is_accepted_and_one_byte_over_is_not() -> None:
    overhead = len('{"k":""}')
    CardCreate.model_validate(_card(content={"k": "x" * (limits.MAX_CONTENT_BYTES - overhead)}))
    with pytest.raises(ValidationError, match="32768"):
        CardCreate.model_validate(
            _card(content={"k": "x" * (limits.MAX_CONTENT_BYTES - overhead + 1)})
        )


def test_unpaired_surrogates_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"(?i)unicode"):
        CardCreate.model_validate(_card(title="bad \ud800"))


def test_nested_non_finite_numbers_are_refused() -> None:
    with pytest.raises(ValidationError, match="finite"):
        CardCreate.model_validate(_card(content={"a": [{"b": float("nan")}]}))


def test_patch_needs_a_field_and_refuses_nulls() -> None:
    assert CardPatch.model_validate({"tags": []}).tags == []
    with pytest.raises(ValidationError, match="at least one"):
        CardPatch.model_validate({})
    with pytest.raises(ValidationError, match="content cannot be null"):
        CardPatch.model_validate({"content": None})


def test_retrieve_needs_a_filter() -> None:
    with pytest.raises(ValidationError, match="at least one of"):
        RetrieveRequest.model_validate({"limit": 3})
    assert RetrieveRequest.model_validate({"query": "x"}).limit == limits.DEFAULT_PAGE_LIMIT


def test_batch_bounds() -> None:
    BatchCreateRequest.model_validate({"cards": [_card()] * limits.MAX_BATCH_CARDS})
    with pytest.raises(ValidationError):
        BatchCreateRequest.model_validate({"cards": [_card()] * (limits.MAX_BATCH_CARDS + 1)})
