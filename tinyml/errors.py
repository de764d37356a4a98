"""One exception family for everything a user can get wrong.

The CLI prints ``error: <message> (hint: <hint>)`` on one line and exits non-zero;
``--debug`` shows the traceback. Library code raises these instead of letting
numpy, TensorFlow or the OS speak to the user.
"""

from __future__ import annotations


class TinymlError(Exception):
    """An error meant for a person: what went wrong and what to do about it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = " ".join(self.message.split())
        if self.hint:
            text += f" (hint: {' '.join(self.hint.split())})"
        return text


class InputError(TinymlError):
    """A file, option or value given by the user is missing, malformed or unsupported."""

    exit_code = 2


class ToolError(TinymlError):
    """An external tool (compiler, emulator, esptool, broker) is missing or failed."""

    exit_code = 3


class DeviceError(TinymlError):
    """A device or serial port misbehaved: no answer, bad frames, unplugged."""

    exit_code = 4


class CheckFailed(TinymlError):
    """The work ran but its result fails a check the user asked for (tolerance, fit, mismatches)."""

    exit_code = 5


class OptionError(InputError):
    """One option has a bad value. It carries the option's key, so the command line names the
    flag (``--per-class``) and a project file names its key and line (``per_class``)."""

    def __init__(self, key: str, problem: str, hint: str | None = None):
        super().__init__(f"--{key.replace('_', '-')} {problem}", hint)
        self.key = key
        self.problem = problem
