"""The benchmark's timeline names the cause of a slow second from what was measured in it:
the server's part or the rest, the largest figure of that part, and nothing from before the run
(docs/performance.md quotes these attributions)."""

from __future__ import annotations

import json
from pathlib import Path

from bench import timeline


def _row(client: float, server: float, **figures: float) -> dict[str, float]:
    return {"client_p99_ms": client, "server_p99_ms": server, **figures}


def test_a_second_within_target_has_no_cause() -> None:
    assert timeline.cause(_row(4.0, 3.0, pool_wait_max_ms=3.0), 5.0) == ""


def test_the_servers_part_is_blamed_on_its_largest_figure() -> None:
    assert timeline.cause(_row(12.0, 10.0, pool_wait_max_ms=8.0), 5.0) == "pool wait"
    assert timeline.cause(_row(12.0, 10.0, gc_max_ms=6.0), 5.0) == "GC pause"
    assert timeline.cause(_row(12.0, 10.0, gc_max_ms=1.0), 5.0).startswith("the request's own")
    flush = _row(90.0, 88.0, gc_max_ms=1.0, commit_max_ms=80.0)
    assert timeline.cause(flush, 5.0) == "a commit waiting on the disk (WAL flush)"
    # A read's COMMIT flushes nothing: in a slow second it is as slow as any round trip.
    assert timeline.cause(flush, 5.0, writes=False).startswith("the request's own")
    behind = _row(22.0, 4.8, commit_max_ms=24.5, loop_lag_max_ms=1.2, loadgen_late_max_ms=1.0)
    assert timeline.cause(behind, 8.0) == "queued behind a commit waiting on the disk"
    assert timeline.cause(behind, 8.0, writes=False).startswith("queued behind the previous")
    loads = _row(12.0, 10.0, gc_max_ms=1.0, index_loads=40)
    assert timeline.cause(loads, 5.0).startswith("search indexes counted or loaded")


def test_the_rest_is_blamed_on_the_load_generator_the_loop_or_the_machine() -> None:
    late = _row(40.0, 4.0, loadgen_late_max_ms=30.0, loop_lag_max_ms=5.0)
    assert timeline.cause(late, 5.0).startswith("the load generator sent late")
    lag = _row(40.0, 4.0, loadgen_late_max_ms=2.0, loop_lag_max_ms=25.0)
    assert timeline.cause(lag, 5.0).startswith("event-loop lag")
    steal = _row(40.0, 4.0, steal_pct=12.0)
    assert timeline.cause(steal, 5.0).startswith("CPU steal")
    checkpoint = _row(40.0, 4.0, cpu_pg_background_pct=35.0, cpu_other_pct=2.0)
    assert timeline.cause(checkpoint, 5.0).startswith("PostgreSQL's background processes")
    neighbour = _row(40.0, 4.0, cpu_pg_background_pct=1.0, cpu_other_pct=30.0)
    assert timeline.cause(neighbour, 5.0) == "another process on the machine"
    quiet = _row(40.0, 4.0, cpu_pg_background_pct=2.0, cpu_other_pct=3.0)
    assert timeline.cause(quiet, 5.0).startswith("queued behind")


def test_one_slow_request_is_told_apart_from_time_outside_the_server() -> None:
    """A request of 100 ms among 700 a second leaves the server's p99 alone but holds up every
    later request on its connection; when even the slowest request was quick, the client's time
    went outside the server."""
    one_slow = _row(110.0, 7.0, server_max_ms=104.0, loop_lag_max_ms=4.0)
    assert timeline.cause(one_slow, 20.0) == "queued behind one slow request on its connection"
    outside = _row(110.0, 7.0, server_max_ms=11.0, loop_lag_max_ms=4.0, loadgen_late_max_ms=0.2)
    assert timeline.cause(outside, 20.0).startswith("outside the server")
    # Machine-wide causes still come first when they were measured.
    assert timeline.cause({**outside, "steal_pct": 12.0}, 20.0).startswith("CPU steal")


def test_processes_are_grouped_by_what_they_do_in_the_benchmark() -> None:
    assert timeline.process_group("postgres: checkpointer ") == "pg_background"
    assert timeline.process_group("postgres: autovacuum worker bench") == "pg_background"
    assert timeline.process_group("postgres: cards_app bench [local] SELECT") == "pg_backends"
    assert timeline.process_group("/usr/lib/postgresql/bin/postgres -D data") == "pg_backends"
    assert timeline.process_group("wrk -t 4 -c 4 -d 8s http://127.0.0.1") == "loadgen"
    assert timeline.process_group(".venv/bin/python .venv/bin/cards-api serve") == "api"
    spawned = "python -c from multiprocessing.spawn import spawn_main; spawn_main()"
    assert timeline.process_group(spawned) == "api"
    assert timeline.process_group("/usr/sbin/sshd -D") == "other"


def _line(event: str, timestamp: str, **fields: object) -> str:
    return json.dumps({"event": event, "timestamp": timestamp, **fields}) + "\n"


def test_the_servers_log_counts_only_what_began_in_the_run(tmp_path: Path) -> None:
    log = tmp_path / "api.log"
    since = 1_800_000_000.5  # the run began half-way through a second
    log.write_text(
        "not json: uvicorn's start-up line\n"
        # a request of the previous run that ended inside this one: not counted
        + _line("request", "2027-01-15T08:00:00.700000Z", duration_ms=500.0)
        + _line("request", "2027-01-15T08:00:01.100000Z", duration_ms=2.0)
        + _line("request", "2027-01-15T08:00:01.200000Z", duration_ms=8.0)
        # the partial first second's stall figures mix both runs: not counted
        + _line("stall", "2027-01-15T08:00:01Z", second=1_800_000_000, loop_lag_max_ms=90.0,
                gc_max_ms=0.0, pool_wait_max_ms=40.0, key_lookups=3, gc_gen2=0)
        # two workers' lines for the same second: the worst figure, the summed counts
        + _line("stall", "2027-01-15T08:00:02Z", second=1_800_000_001, loop_lag_max_ms=3.0,
                gc_max_ms=1.0, pool_wait_max_ms=0.5, key_lookups=2, gc_gen2=1, index_loads=5,
                commit_max_ms=4.0)
        + _line("stall", "2027-01-15T08:00:02Z", second=1_800_000_001, loop_lag_max_ms=7.0,
                gc_max_ms=0.0, pool_wait_max_ms=0.2, key_lookups=1, gc_gen2=0, index_loads=2)
        # an embedding pass of 1.5 s that ended at +3.0 s covers +1 s to +3 s
        + _line("cards_embedded", "2027-01-15T08:00:03Z", cards=64, duration_ms=1500.0)
    )  # fmt: skip
    seconds = timeline.server_seconds(log, 0, since)
    first = seconds[1_800_000_001]
    assert first["server_p99_ms"] == 8.0  # 2 and 8 ms began in the run; the 500 ms did not
    assert first["server_max_ms"] == 8.0
    assert first["loop_lag_max_ms"] == 7.0
    assert first["gc_max_ms"] == 1.0
    assert first["key_lookups"] == 3
    assert first["index_loads"] == 7
    assert first["commit_max_ms"] == 4.0  # the worse worker's
    assert "pool_wait_max_ms" in first
    assert first["pool_wait_max_ms"] == 0.5
    assert seconds[1_800_000_000].get("loop_lag_max_ms") is None
    assert all(seconds[s].get("embedding_pass") for s in (1_800_000_001, 1_800_000_002))
