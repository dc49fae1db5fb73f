"""make eval: retrieval quality measured against a real server (see harness.py)."""
