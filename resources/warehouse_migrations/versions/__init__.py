"""The revisions of the warehouse schema, oldest first by their numbers (loaded by Alembic by path)."""
