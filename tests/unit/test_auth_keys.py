from __future__ import annotations

import uuid

import pytest

from cards_api import auth


def test_a_generated_key_names_its_tenant_and_hashes_consistently() -> None:
    tenant = uuid.uuid4()
    key = auth.generate_key(tenant)
    parsed = auth.parse_key(key)

    assert key.startswith("cards_")
    assert len(key) == auth.KEY_LENGTH
    assert parsed is not None
    assert parsed.tenant_id == tenant
    assert parsed.key_hash == auth.hash_key(key)
    assert len(parsed.key_hash) == 32


def test_keys_are_unique() -> None:
    tenant = uuid.uuid4()
    assert len({auth.generate_key(tenant) for _ in range(200)}) == 200


@pytest.mark.parametrize("position", [6, 20, 40, 70, -1])
def test_any_single_typo_is_caught_by_the_checksum(position: int) -> None:
    key = auth.generate_key(uuid.uuid4())
    chars = list(key)
    chars[position] = "0" if chars[position] != "0" else "1"
    assert auth.parse_key("".join(chars)) is None


@pytest.mark.parametrize("text", ["", "cards_", "cards_" + "!" * 71, "ghp_" + "a" * 73, "x" * 77])
def test_malformed_keys_are_refused(text: str) -> None:
    assert auth.parse_key(text) is None


def test_the_body_carries_256_random_bits() -> None:
    tenant = uuid.UUID(int=0)
    bodies = {auth.generate_key(tenant)[6:-6] for _ in range(50)}
    assert len(bodies) == 50
