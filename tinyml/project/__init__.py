"""A tinyml.toml project: its checked settings, its stages and the record of what last ran."""
