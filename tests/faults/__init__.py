"""The fault matrix: bargein against a hostile Realtime server (issue 15)."""
