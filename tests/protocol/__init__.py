"""Pure, table-driven tests of the sans-I/O protocol layer (no network, no event loop)."""
