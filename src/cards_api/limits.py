"""Every size limit of the contract, in one place.

Validation models, middleware and queries import these names rather than repeating numbers, so
a limit changes in one line and its error message always names the value that is enforced.
"""

from typing import Final

MAX_BODY_BYTES: Final = 1024 * 1024
MAX_BATCH_CARDS: Final = 100
MAX_CONTENT_BYTES: Final = 32 * 1024
MIN_TITLE_CHARS: Final = 1
MAX_TITLE_CHARS: Final = 200
MAX_TAGS: Final = 20
MAX_TAG_CHARS: Final = 64
MAX_EXTERNAL_REF_CHARS: Final = 200
MAX_PAGE_LIMIT: Final = 100
DEFAULT_PAGE_LIMIT: Final = 50
MAX_RETRIEVE_IDS: Final = 100
MAX_QUERY_CHARS: Final = 500
MAX_WORKFLOW_ID_CHARS: Final = 200
MAX_SESSION_ID_CHARS: Final = 200
WORKFLOW_TYPE_PATTERN: Final = r"^[a-z0-9_]{1,64}$"
MAX_IDEMPOTENCY_KEY_CHARS: Final = 255
MAX_TRACE_ID_CHARS: Final = 128
MAX_HEADER_BYTES: Final = 16 * 1024
"""The request line and header section together; larger is a 431 (as nginx's default buffers)."""
MAX_HEADER_LINES: Final = 100
MAX_SUMMARY_GROUPS: Final = 1000
DEFAULT_SUMMARY_GROUPS: Final = 100
MAX_KEY_NAME_CHARS: Final = 200
MAX_TASK_CHARS: Final = 2000
MIN_TOKEN_BUDGET: Final = 50
MAX_TOKEN_BUDGET: Final = 32_000
MAX_CONTEXT_INCLUDE: Final = 20
CONTEXT_CANDIDATES: Final = 100
"""How many cards, best first, a context considers after its `include`."""
