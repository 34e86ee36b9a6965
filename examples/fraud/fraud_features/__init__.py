"""On-demand feature functions of the fraud example (scalars online, pandas Series offline)."""
