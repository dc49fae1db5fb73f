"""Cards API: a multi-tenant store of structured facts for AI content workflows."""

__version__ = "1.0.0"
