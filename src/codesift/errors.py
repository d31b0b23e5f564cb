"""The codesift exception family.

Every error raised on purpose is a :class:`CodesiftError`. Each carries the stage it
happened in, the path or batch it concerns, and the underlying cause, so the CLI can
render it as the single line the user reads (:meth:`CodesiftError.one_line`).
Cancellation stays a ``BaseException`` and is never caught as one of these.
"""

from __future__ import annotations


class CodesiftError(Exception):
    """Root of every error codesift raises on purpose."""

    exit_code = 1
    # A stage failure reads "embed stage failed on batch 3: ..."; a plain refusal (no
    # index, bad option, lock held) reads as its message alone.
    show_stage = True

    def __init__(
        self,
        message: str,
        *,
        stage: str | None = None,
        path: str | None = None,
        batch: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.stage = stage
        self.path = path
        self.batch = batch
        if cause is not None:
            self.__cause__ = cause

    @property
    def cause(self) -> BaseException | None:
        return self.__cause__

    def root_cause(self) -> BaseException | None:
        """The deepest cause that says something (a bare TimeoutError says nothing)."""
        best = None
        cause = self.__cause__
        while cause is not None:
            if str(cause):
                best = cause
            cause = cause.__cause__
        return best

    def one_line(self) -> str:
        parts = []
        if self.stage and self.show_stage:
            parts.append(f"{self.stage} stage failed")
        if self.batch:
            parts.append(f"on {self.batch}")
        elif self.path:
            parts.append(f"on {self.path}")
        head = " ".join(parts)
        text = f"{head}: {self.message}" if head else self.message
        root = self.root_cause()
        if root is not None and str(root) not in text:
            text += f" (cause: {type(root).__name__}: {root})"
        return " ".join(text.split())

    def as_dict(self) -> dict:
        return {"stage": self.stage, "message": self.one_line(), "path": self.path or self.batch}


class ConfigError(CodesiftError):
    """The user asked for something that cannot work (bad option, bad embedder spec)."""

    show_stage = False

    exit_code = 2


class IndexLockedError(CodesiftError):
    """Another process holds the index's writer lock."""

    show_stage = False


class NoIndexError(CodesiftError):
    """There is no index at the expected place."""

    show_stage = False


class EmbedderMismatchError(CodesiftError):
    """The index was built with another embedder; only ``--full`` may replace it."""

    show_stage = False


class StageError(CodesiftError):
    """A pipeline stage failed for good (retries exhausted, circuit open, deadline)."""


class StageTimeoutError(StageError):
    """A bounded wait inside a stage ran past its deadline."""


class StallError(StageError):
    """A stage had pending work and made no progress for the stall timeout."""


class MemoryLimitError(StageError):
    """RSS stayed above the memory limit for longer than the memory wait timeout."""


class StoreError(CodesiftError):
    """Reading or writing the index store failed."""


class DiskSpaceError(CodesiftError):
    """A rebuild was refused up front: the filesystem cannot hold two generations."""

    show_stage = False


class WriterAbandonedError(StoreError):
    """A store call passed its deadline while it may still be running.

    It is never retried (a second attempt beside a live first one could write twice);
    the run fails and the next run reconciles from the journal.
    """


class InterruptedRun(CodesiftError):
    """The run was stopped by a signal; what was complete has been committed."""

    def __init__(self, signum: int | None = None, reason: str | None = None) -> None:
        import signal

        if signum is None:  # a cancel token: the same shutdown as SIGINT, and its exit code
            super().__init__(f"cancelled ({reason or 'cancel requested'})", stage="supervisor")
            self.exit_code = 128 + signal.SIGINT
        else:
            super().__init__(f"interrupted by {signal.Signals(signum).name}", stage="supervisor")
            self.exit_code = 128 + signum
        self.signum = signum


class EmbedderCallError(StageError):
    """One call to an embedder failed, classified by the embedder itself.

    ``retryable`` is False for failures a retry cannot fix (a rejected key, an unknown
    model, a request the server refuses as too large); ``retry_after_s`` carries the
    server's ``Retry-After`` hint. The pipeline's retry policy honours both
    (:func:`codesift.pipeline.retry.call_with_retries`).
    """

    def __init__(self, message: str, *, retryable: bool = True, retry_after_s: float | None = None,
                 **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retryable = retryable
        self.retry_after_s = retry_after_s
