"""API key format: the tenant inside, a CRC against typos, a tag under the deployment's secret
against forgeries; legacy untagged keys still parse (they are checked by look-up)."""

from __future__ import annotations

import uuid

import pytest

from cards_api import auth

SECRET = b"s" * 32


def test_a_generated_key_names_its_tenant_and_hashes_consistently() -> None:
    tenant = uuid.uuid4()
    key = auth.generate_key(tenant, SECRET)
    parsed = auth.parse_key(key, SECRET)

    assert key.startswith("cards_")
    assert len(key) == auth.KEY_LENGTH
    assert parsed is not None
    assert parsed.tenant_id == tenant
    assert parsed.key_hash == auth.hash_key(key)
    assert len(parsed.key_hash) == 32


def test_keys_are_unique() -> None:
    tenant = uuid.uuid4()
    assert len({auth.generate_key(tenant, SECRET) for _ in range(200)}) == 200


@pytest.mark.parametrize("position", [6, 20, 40, 70, 75, 80, -1])
def test_any_single_typo_is_caught_without_io(position: int) -> None:
    key = auth.generate_key(uuid.uuid4(), SECRET)
    chars = list(key)
    chars[position] = "0" if chars[position] != "0" else "1"
    assert auth.parse_key("".join(chars), SECRET) is None


def test_a_key_tagged_under_another_secret_is_refused() -> None:
    forged = auth.generate_key(uuid.uuid4(), b"another deployment's secret....")
    assert auth.parse_key(forged, SECRET) is None


def test_a_legacy_untagged_key_still_parses() -> None:
    key = auth.generate_key(uuid.uuid4(), SECRET)[: auth.LEGACY_KEY_LENGTH]
    parsed = auth.parse_key(key, SECRET)
    assert parsed is not None
    assert parsed.key_hash == auth.hash_key(key)


@pytest.mark.parametrize("text", ["", "cards_", "cards_" + "!" * 82, "ghp_" + "a" * 84, "x" * 88])
def test_malformed_keys_are_refused(text: str) -> None:
    assert auth.parse_key(text, SECRET) is None


def test_the_body_carries_256_random_bits() -> None:
    tenant = uuid.UUID(int=0)
    bodies = {auth.generate_key(tenant, SECRET)[6:71] for _ in range(50)}
    assert len(bodies) == 50
