"""Batch jobs: OpenAI's files and batches APIs over a durable, leased store, and offline runs."""
