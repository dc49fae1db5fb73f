"""`make eval`: retrieval quality of a real server, per mode, beside an in-process BM25.

A collection is a folder: `docs.jsonl` (`{"id", "title", "text"}`), `queries.jsonl`
(`{"id", "text"}`), `qrels.tsv` (`query_id`, `doc_id`, `relevance`, with a header line). Every
document becomes a card of a fresh tenant (loaded through the HTTP API, `external_ref` = its id),
every query is asked in each mode with `limit` 10, and the ranked ids are scored with graded
nDCG@10 (gain 2^rel - 1), recall@10 and MRR@10. The reference ranks the same documents with
`rank-bm25`'s BM25Okapi (k1 0.9, b 0.4, tokens `[a-z0-9]+` lower-cased, a small stop list) —
the setting the Cranfield folder's README quotes its reference from.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rank_bm25 import BM25Okapi

K = 10
MODES = ("text", "semantic", "hybrid")
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "what",
        "which",
        "with",
        "how",
        "do",
        "does",
        "can",
    ]
)
_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Collection:
    name: str
    docs: dict[str, tuple[str, str]]
    """id → (title, text)."""
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    """query id → {doc id: relevance > 0}."""


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def load(folder: Path) -> Collection:
    docs = {
        str(d["id"]): (str(d.get("title") or ""), str(d.get("text") or ""))
        for d in _jsonl(folder / "docs.jsonl")
    }
    queries = {str(q["id"]): str(q["text"]) for q in _jsonl(folder / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    with (folder / "qrels.tsv").open(encoding="utf-8") as tsv:
        rows = csv.reader(tsv, delimiter="\t")
        next(rows)  # header
        for query_id, doc_id, relevance in rows:
            if int(relevance) > 0:
                qrels.setdefault(query_id, {})[doc_id] = int(relevance)
    judged = {q: text for q, text in queries.items() if q in qrels}
    return Collection(folder.resolve().name, docs, judged, qrels)


def tokens(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text.lower()) if t not in STOP_WORDS]


def ndcg(ranked: list[str], relevant: dict[str, int], k: int = K) -> float:
    gains = [(2 ** relevant.get(doc, 0) - 1) / math.log2(i + 2) for i, doc in enumerate(ranked[:k])]
    ideal = sorted(relevant.values(), reverse=True)[:k]
    best = sum((2**rel - 1) / math.log2(i + 2) for i, rel in enumerate(ideal))
    return sum(gains) / best if best else 0.0


def recall(ranked: list[str], relevant: dict[str, int], k: int = K) -> float:
    return len(set(ranked[:k]) & set(relevant)) / len(relevant) if relevant else 0.0


def mrr(ranked: list[str], relevant: dict[str, int], k: int = K) -> float:
    for i, doc in enumerate(ranked[:k]):
        if doc in relevant:
            return 1.0 / (i + 1)
    return 0.0


@dataclass
class Scores:
    ndcg: list[float] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)
    mrr: list[float] = field(default_factory=list)

    def add(self, ranked: list[str], relevant: dict[str, int]) -> None:
        self.ndcg.append(ndcg(ranked, relevant))
        self.recall.append(recall(ranked, relevant))
        self.mrr.append(mrr(ranked, relevant))

    def summary(self) -> dict[str, float]:
        n = max(1, len(self.ndcg))
        return {
            "ndcg@10": round(sum(self.ndcg) / n, 4),
            "recall@10": round(sum(self.recall) / n, 4),
            "mrr@10": round(sum(self.mrr) / n, 4),
            "queries": len(self.ndcg),
        }


def bm25_reference(collection: Collection) -> dict[str, float]:
    ids = list(collection.docs)
    corpus = [tokens(f"{title} {text}") for title, text in collection.docs.values()]
    index = BM25Okapi(corpus, k1=0.9, b=0.4)
    scores = Scores()
    for query_id, text in collection.queries.items():
        weights = index.get_scores(tokens(text))
        ranked = [ids[i] for i in sorted(range(len(ids)), key=lambda i: -weights[i])[:K]]
        scores.add(ranked, collection.qrels[query_id])
    return scores.summary()


def evaluate(
    collection: Collection, search: Callable[[str, str], list[str]], modes: Iterable[str] = MODES
) -> dict[str, dict[str, float]]:
    """Score `search(query, mode) -> ranked doc ids` in every mode."""
    results = {}
    for mode in modes:
        scores = Scores()
        for query_id, text in collection.queries.items():
            scores.add(search(text, mode), collection.qrels[query_id])
        results[mode] = scores.summary()
    return results


def card_for(doc_id: str, title: str, text: str) -> dict[str, Any]:
    """A document as a card: its title (or its id when it has none), its text as content."""
    return {
        "card_type": "insight",
        "title": (title.strip() or f"Document {doc_id}")[:200],
        "content": {"text": text},
        "external_ref": doc_id,
    }
