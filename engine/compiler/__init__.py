"""engine.compiler."""
