"""Database migrations (Alembic): one revision per schema change, matching `models/`."""
