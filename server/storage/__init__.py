"""Where durable state lives: SQLite (the embedded default) or PostgreSQL (shared by replicas)."""
