"""Contract suites: every implementation of a protocol passes the same tests (STYLE habit 9)."""
