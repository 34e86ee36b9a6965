"""engine.sql."""
