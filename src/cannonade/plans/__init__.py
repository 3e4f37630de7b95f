"""YAML test plans in loadr's format: read with positions, checked all at once, and
compiled into a scenario the engine runs on the same hot path as a Python one."""
