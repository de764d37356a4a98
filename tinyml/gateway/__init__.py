"""The gateway: serial lines in, SQLite store, alert rules and drift, MQTT out (docs/gateway.md).

Core dependencies only: nothing under this package imports TensorFlow or Keras.
"""
