"""engine.runtime."""
