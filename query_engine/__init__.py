"""query_engine."""
