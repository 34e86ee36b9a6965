"""engine.training."""
