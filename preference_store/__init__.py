"""SQL storage for prefstack: models, engine/session factory and query functions."""
