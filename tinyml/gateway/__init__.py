"""The gateway: serial lines in, SQLite store, alert rules and drift, MQTT out (docs/gateway.md).

Core dependencies only: nothing under this package imports TensorFlow or Keras.
"""

import logging as _logging

from tinyml.gateway.logsafe import install as _install_log_filter

_install_log_filter(_logging.getLogger("tinyml.gateway"))  # device text never forges a log line
