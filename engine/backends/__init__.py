"""engine.backends."""
