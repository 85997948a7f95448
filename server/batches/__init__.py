"""Batch jobs: OpenAI's files and batches APIs over a durable SQLite store, and offline runs."""
