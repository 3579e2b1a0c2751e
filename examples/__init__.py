"""Programs and machines to copy: ``examples/machines/`` holds extended state tables."""
