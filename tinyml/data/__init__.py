"""Sensor data: synthetic generators, importers, windows, features and splits."""
