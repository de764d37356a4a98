"""tinyml: sensor data to a verified int8 model on a microcontroller, and back."""

__version__ = "0.1.0"
