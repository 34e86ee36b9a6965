"""engine.spec."""
