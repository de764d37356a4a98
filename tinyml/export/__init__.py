"""Exports of a model for firmware that embeds the TFLM runtime."""
