"""`make eval` works on any collection in the documented format: the harness starts its own
server, loads the documents, asks each query in every mode, and writes the scores beside BM25.
The collection is made here (the project never ships a third party's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eval.harness import mrr, ndcg, recall

from tests.e2e.conftest import clean_env

pytestmark = pytest.mark.e2e

DOCS = [
    ("d1", "Solar panels", "photovoltaic panels turn sunlight into electricity on roofs"),
    ("d2", "Wind turbines", "large turbines turn wind into electricity offshore"),
    ("d3", "Bread baking", "sourdough bread needs flour water salt and time"),
    ("d4", "Pasta", "fresh pasta is made from flour and eggs"),
    ("d5", "Bicycles", "a bicycle has two wheels pedals and a chain"),
    ("d6", "Trains", "high speed trains run on electric power between cities"),
]
QUERIES = [
    ("q1", "electricity from the sun"),
    ("q2", "making bread with flour"),
    ("q3", "two wheels and pedals"),
]
QRELS = [("q1", "d1", 2), ("q1", "d2", 1), ("q2", "d3", 2), ("q2", "d4", 1), ("q3", "d5", 2)]


def _collection(folder: Path) -> Path:
    folder.mkdir()
    (folder / "docs.jsonl").write_text(
        "".join(json.dumps({"id": i, "title": t, "text": x}) + "\n" for i, t, x in DOCS)
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": x}) + "\n" for i, x in QUERIES)
    )
    (folder / "qrels.tsv").write_text(
        "query_id\tdoc_id\trelevance\n" + "".join(f"{q}\t{d}\t{r}\n" for q, d, r in QRELS)
    )
    return folder


def test_the_metrics_follow_their_definitions() -> None:
    relevant = {"a": 2, "b": 1}
    assert ndcg(["a", "b"], relevant) == pytest.approx(1.0)
    assert ndcg(["x", "a"], relevant) < ndcg(["a", "x"], relevant)
    assert recall(["a", "x"], relevant) == 0.5
    assert mrr(["x", "b"], relevant) == 0.5
    assert mrr(["x", "y"], relevant) == 0.0


def test_make_eval_scores_every_mode_beside_bm25(tmp_path: Path) -> None:
    folder = _collection(tmp_path / "tiny")
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-m", "eval", str(folder), "--output", str(out)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| hybrid |" in result.stdout
    assert "BM25 reference" in result.stdout
    report = json.loads((out / "tiny.json").read_text())
    assert report["documents"] == 6
    assert report["queries"] == 3
    assert set(report["modes"]) == {"text", "semantic", "hybrid"}
    for scores in [*report["modes"].values(), report["bm25_reference"]]:
        assert 0.0 <= scores["ndcg@10"] <= 1.0
        assert scores["queries"] == 3
    # An easy collection: every query's best document is found first by the fused ranking.
    assert report["modes"]["hybrid"]["mrr@10"] == 1.0
