"""A Hypothesis state machine drives the real API and checks it against a model after every step:
cards created, upserted, patched (with fresh and stale If-Match), archived, retrieved and used
in any order must leave exactly what the model predicts — versions, counts, events, missing ids.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from tests.e2e.conftest import Server
from tests.support import issue_tenant_sync

pytestmark = pytest.mark.e2e

CARD_TYPES = ["company", "voice", "insight"]
REFS = ["a", "b", "c", None, None]
WORKFLOWS = ["run-1", "run-2", "run-3"]


@dataclass
class ModelCard:
    card_type: str
    title: str
    external_ref: str | None
    tags: list[str]
    version: int = 1
    usage_count: int = 0
    archived: bool = False
    events: set[str] = field(default_factory=set)


card_specs = st.lists(
    st.fixed_dictionaries(
        {
            "card_type": st.sampled_from(CARD_TYPES),
            "title": st.text(alphabet="abcxyz ", min_size=1, max_size=12).filter(str.strip),
            "external_ref": st.sampled_from(REFS),
            "tags": st.lists(st.sampled_from(["red", "blue"]), max_size=2, unique=True),
        }
    ),
    min_size=1,
    max_size=4,
)


def machine_for(base_url: str, dsn: str) -> type[RuleBasedStateMachine]:
    class CardsMachine(RuleBasedStateMachine):
        cards = Bundle("cards")

        def __init__(self) -> None:
            super().__init__()
            tenant = issue_tenant_sync(dsn)
            self.http = httpx.Client(base_url=base_url, headers=tenant.headers(), timeout=30)
            self.model: dict[str, ModelCard] = {}

        def teardown(self) -> None:
            self.http.close()

        def _by_ref(self, card_type: str, ref: str | None) -> str | None:
            if ref is None:
                return None
            return next(
                (
                    i
                    for i, c in self.model.items()
                    if (c.card_type, c.external_ref) == (card_type, ref)
                ),
                None,
            )

        @rule(target=cards, specs=card_specs)
        def create(self, specs: list[dict[str, Any]]) -> Any:
            seen: set[tuple[str, str]] = set()
            unique = []
            for spec in specs:  # the API refuses one (card_type, external_ref) twice in a batch
                key = (spec["card_type"], spec["external_ref"])
                if spec["external_ref"] is not None and key in seen:
                    continue
                seen.add(key)
                unique.append(spec)
            body = [{**s, "content": {"n": 1}} for s in unique]
            body = [{k: v for k, v in c.items() if v is not None} for c in body]
            response = self.http.post("/api/v1/cards/batch", json={"cards": body})
            assert response.status_code == 201, response.text
            result = response.json()
            expected_updated = sum(
                self._by_ref(s["card_type"], s["external_ref"]) is not None for s in unique
            )
            assert (result["created"], result["updated"]) == (
                len(unique) - expected_updated,
                expected_updated,
            )
            for spec, created in zip(unique, result["cards"], strict=True):
                existing = self._by_ref(spec["card_type"], spec["external_ref"])
                if existing is not None:
                    assert created["id"] == existing
                    model = self.model[existing]
                    model.version += 1
                    model.archived = False
                    model.title, model.tags = spec["title"], spec["tags"]
                else:
                    self.model[created["id"]] = ModelCard(
                        spec["card_type"], spec["title"], spec["external_ref"], spec["tags"]
                    )
                assert created["version"] == self.model[created["id"]].version
            return multiple(*(c["id"] for c in result["cards"]))

        @rule(card=cards, title=st.sampled_from(["one", "two"]), stale=st.booleans())
        def patch(self, card: str, title: str, stale: bool) -> None:
            model = self.model[card]
            version = model.version + 7 if stale else model.version
            response = self.http.patch(
                f"/api/v1/cards/{card}", json={"title": title}, headers={"If-Match": f'"{version}"'}
            )
            if model.archived:
                assert response.status_code == 404
            elif stale:
                assert response.status_code == 412
            else:
                assert response.status_code == 200, response.text
                model.version += 1
                model.title = title
                assert response.headers["ETag"] == f'"{model.version}"'

        @rule(card=cards)
        def archive(self, card: str) -> None:
            response = self.http.delete(f"/api/v1/cards/{card}")
            assert response.status_code == (404 if self.model[card].archived else 204)
            self.model[card].archived = True

        @rule(card=cards, workflow=st.sampled_from(WORKFLOWS))
        def use(self, card: str, workflow: str) -> None:
            model = self.model[card]
            response = self.http.post(
                f"/api/v1/cards/{card}/usage",
                json={"workflow_id": workflow, "workflow_type": "stateful"},
            )
            if model.archived:
                assert response.status_code == 404
                return
            assert response.status_code == 200
            recorded = workflow not in model.events
            assert response.headers["X-Event-Recorded"] == str(recorded).lower()
            model.events.add(workflow)
            model.usage_count += 1
            assert response.json()["usage_count"] == model.usage_count

        @rule(picked=st.lists(cards, max_size=5), unknown=st.booleans())
        def retrieve(self, picked: list[str], unknown: bool) -> None:
            asked = [*picked, *([str(uuid.uuid4())] if unknown else [])]
            if not asked:
                return
            response = self.http.post("/api/v1/cards/retrieve", json={"card_ids": asked})
            assert response.status_code == 200
            wanted = list(dict.fromkeys(asked))
            live = [i for i in wanted if i in self.model and not self.model[i].archived]
            assert [c["id"] for c in response.json()["cards"]] == live
            assert response.json()["missing_ids"] == [i for i in wanted if i not in live]

        @invariant()
        def the_api_holds_what_the_model_holds(self) -> None:
            listed = self.http.get("/api/v1/cards", params={"limit": 100}).json()["cards"]
            live = {i: m for i, m in self.model.items() if not m.archived}
            assert {c["id"] for c in listed} == set(live)
            for c in listed:
                model = live[c["id"]]
                assert (c["version"], c["usage_count"], c["title"]) == (
                    model.version,
                    model.usage_count,
                    model.title,
                )
            summary = self.http.get("/api/v1/usage/summary", params={"group_by": "card"}).json()
            events = {g["key"]: g["events"] for g in summary["groups"]}
            assert events == {i: len(m.events) for i, m in self.model.items() if m.events}

    return CardsMachine


def test_the_api_behaves_like_its_model(server_on_test_database: Server, database_url: str) -> None:
    machine = machine_for(server_on_test_database.base_url, database_url)
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
