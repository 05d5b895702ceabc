"""Error types with the exit codes the CLI maps them to (0 ok, 1 error, 99 thresholds)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_THRESHOLDS = 99


class AxonLabError(Exception):
    """A user-facing error: the message is one line that names what was wrong.

    The CLI prints ``axon-lab: <message>`` and exits with :data:`EXIT_ERROR`.
    """

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        # Keep it to one line: multi-line reasons are folded so logs stay greppable.
        super().__init__(" ".join(str(message).split()))


class ConfigError(AxonLabError):
    """A setting, parameter or option has a wrong value."""


class InputFileError(AxonLabError):
    """A file given by the user cannot be read or is not what it should be."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class BackendUnavailable(AxonLabError):
    """A backend (Redis, Qdrant, MongoDB, LLM) cannot be reached or timed out."""

    def __init__(self, backend: str, problem: str) -> None:
        super().__init__(f"{backend} unavailable: {problem}")
        self.backend = backend
        self.problem = problem


class ThresholdsFailed(AxonLabError):
    """One or more thresholds or targets failed; the CLI exits with 99 (k6's convention)."""

    exit_code = EXIT_THRESHOLDS
