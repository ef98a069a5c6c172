"""Scenario files: the frozen specs, the TOML key tables and their parser toolkit, extends."""
