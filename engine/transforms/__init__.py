"""engine.transforms."""
