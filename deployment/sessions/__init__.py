"""Snakepit sessions: the record, its digests, and the stores that hold it."""
