"""Controller storage: SQLAlchemy Core schema, engine set-up and Alembic migrations."""
