"""Alembic migrations for prefstack's schema."""
