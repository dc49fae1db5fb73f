"""`python -m eval COLLECTION [--url URL]`: load a collection into a fresh tenant of a real Cards
API, ask every query in each mode, print the table beside BM25, write `eval/results/*.json`.

Without `--url` it starts its own `cards-api serve` on an embedded PostgreSQL in a temporary
folder (the demo tenant of that fresh database is the fresh tenant); with `--url` it uses a
running deployment and needs `CARDS_API_KEY` and `CARDS_TENANT_ID` of an empty tenant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

from cards_client import CardsClient
from eval.harness import MODES, bm25_reference, card_for, evaluate, load

RESULTS = Path(__file__).parent / "results"
BATCH = 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def own_server() -> Iterator[tuple[str, str, str]]:
    """A fresh `cards-api serve` on an embedded database: its URL, demo key and tenant."""
    with tempfile.TemporaryDirectory(prefix="cards-eval-") as folder:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CARDS_")}
        env.pop("DATABASE_URL", None)
        env.update(CARDS_DATA_DIR=folder, CARDS_RATE_LIMIT="0", CARDS_LOG_LEVEL="WARNING")
        log = Path(folder) / "server.log"
        with log.open("w") as out:
            server = subprocess.Popen(
                [str(Path(sys.executable).parent / "cards-api"), "serve", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"cards-api did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
            printed = log.read_text()
            key = re.search(r"CARDS_API_KEY=(\S+)", printed)
            tenant = re.search(r"CARDS_TENANT_ID=(\S+)", printed)
            if key is None or tenant is None:
                raise SystemExit("the server printed no demo tenant")
            yield url, key.group(1), tenant.group(1)
        finally:
            server.terminate()
            server.wait(timeout=60)


def run(folder: Path, url: str, key: str, tenant: str, modes: list[str]) -> dict[str, object]:
    collection = load(folder)
    started = time.monotonic()
    with CardsClient(url, api_key=key, tenant_id=tenant, timeout=60) as cards:
        docs = list(collection.docs.items())
        for i in range(0, len(docs), BATCH):
            cards.create_cards(
                [card_for(doc_id, title, text) for doc_id, (title, text) in docs[i : i + BATCH]]
            )
        while cards.search_info().pending:  # the background worker embeds what is left
            time.sleep(0.2)
        loaded = time.monotonic() - started
        refs: dict[str, str] = {}

        def search(query: str, mode: str) -> list[str]:
            result = cards.retrieve(query=query, mode=mode, limit=10)  # type: ignore[arg-type]
            return [refs.setdefault(str(c.id), c.external_ref or "") for c in result.cards]

        results = evaluate(collection, search, modes)
        info = cards.search_info()
    reference = bm25_reference(collection)
    return {
        "collection": collection.name,
        "documents": len(collection.docs),
        "queries": len(collection.queries),
        "embedder": info.embedder,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "load_seconds": round(loaded, 1),
        "bm25_reference": reference,
        "modes": results,
    }


def _commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def table(report: dict[str, object]) -> str:
    reference = report["bm25_reference"]
    assert isinstance(reference, dict)
    modes = report["modes"]
    assert isinstance(modes, dict)
    lines = [
        f"{report['collection']}: {report['documents']} documents, {report['queries']} queries, "
        f"embedder {report['embedder']}, commit {report['commit']}",
        "",
        "| mode | nDCG@10 | recall@10 | MRR@10 | nDCG@10 / BM25 |",
        "|---|---|---|---|---|",
    ]
    for mode, scores in modes.items():
        ratio = scores["ndcg@10"] / reference["ndcg@10"] if reference["ndcg@10"] else 0.0
        lines.append(
            f"| {mode} | {scores['ndcg@10']:.3f} | {scores['recall@10']:.3f} "
            f"| {scores['mrr@10']:.3f} | {ratio:.2f} |"
        )
    lines.append(
        f"| BM25 reference (rank-bm25, in-process) | {reference['ndcg@10']:.3f} "
        f"| {reference['recall@10']:.3f} | {reference['mrr@10']:.3f} | 1.00 |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m eval", description=__doc__)
    parser.add_argument(
        "collection", type=Path, help="folder with docs.jsonl, queries.jsonl, qrels.tsv"
    )
    parser.add_argument("--url", help="a running deployment (CARDS_API_KEY, CARDS_TENANT_ID)")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if args.url:
        report = run(
            args.collection,
            args.url,
            os.environ["CARDS_API_KEY"],
            os.environ["CARDS_TENANT_ID"],
            modes,
        )
    else:
        with own_server() as (url, key, tenant):
            report = run(args.collection, url, key, tenant, modes)
    print(table(report))
    args.output.mkdir(parents=True, exist_ok=True)
    path = args.output / f"{report['collection']}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
