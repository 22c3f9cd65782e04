"""What a ``rayrec`` command prints, and where everything else goes.

Default output is rayrec's own lines (progress per stage, results, one error line). Ray's
logging goes to a log file per command (``$RAYREC_LOG_DIR``, else ``rayrec-logs`` in the
system temp directory) and reaches the terminal only from WARNING up; ``--verbose`` gives
Ray's console output back unchanged. In detail, without ``--verbose``:

* Ray Core (logger ``ray``): WARNING and above once Ray is running; what it logs while
  starting (``Started a local Ray instance``, the token-authentication notice) only to the
  file, ERROR excepted;
* Ray Data (logger ``ray.data``): WARNING only. Its INFO lines (``Starting execution``, the
  progress tables, "Progress will be logged because stdout is a non-interactive terminal")
  and the tracebacks it logs at ERROR when a task fails go to the file: every such failure
  is also raised to the caller, which reports it once (``rayrec prepare`` as one error line
  naming the log file, :func:`log_exception`);
* what Ray's C++ core prints on the process's own stderr (file descriptor 2: the driver's
  core worker logs there, e.g. Ray 2.60's ERROR line for every actor pool of Ray Data,
  ``core_worker.cc: Actor with class name 'MapWorker(...)' ... has constructor arguments in
  the object store and max_restarts > 0``, ray-project/ray#53727, which is no fault of the
  job) goes to the log file too: descriptor 2 is pointed at the file and ``sys.stderr``, with
  every logging handler that wrote to it, at a copy of the terminal's descriptor, so
  Python's own lines (rayrec's, tracebacks, Ray's warnings) still reach the terminal. Only
  where ``sys.stderr`` is descriptor 2 itself (a command's process, not a test's captured
  output);
* the driver's Ray Data context gets ``enable_progress_bars = False`` and
  ``print_on_execution_start = False`` (Ray Data's public knobs for the same lines; the
  WARNING Ray Data logs once about the first is dropped from the console too).

The policy is applied by :func:`configure` (``rayrec.cli.main`` calls it for every command)
before any command starts Ray, so it holds for every ``ray.init`` that follows, whoever
calls it. It filters the console handlers Ray installs on import; it does not change the
loggers' levels, so the log file keeps Ray's INFO records.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import TextIO

LOG_DIR_ENV = "RAYREC_LOG_DIR"
_FILE_ONLY = "rayrec.logfile"  # rayrec's records for the file alone (not propagated)
_LOGGERS = ("ray", "ray.data", _FILE_ONLY)
_OUR_KNOBS = ("Progress bars disabled",)
_FORMAT = "%(asctime)s %(levelname)s %(name)s %(filename)s:%(lineno)s -- %(message)s"


class _ConsoleFilter(logging.Filter):
    """Installed on Ray's console handlers: which of Ray's records reach the terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "ray.data" or record.name.startswith("ray.data."):
            if str(record.msg).startswith(_OUR_KNOBS):  # Ray Data's notice of this policy
                return False
            return logging.WARNING <= record.levelno < logging.ERROR
        import ray

        if not ray.is_initialized():  # start-up notices
            return record.levelno >= logging.ERROR
        return record.levelno >= logging.WARNING


class _State:
    path: Path | None = None
    handler: logging.Handler | None = None
    verbose = False
    original_stderr: TextIO | None = None  # while descriptor 2 is the log file's


def default_log_dir() -> Path:
    return Path(os.environ.get(LOG_DIR_ENV) or Path(tempfile.gettempdir()) / "rayrec-logs")


def log_path() -> Path | None:
    """The current command's log file (None before :func:`configure`)."""
    return _State.path


def _console_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [
        h
        for h in logger.handlers
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
    ]


def _restream(old: TextIO, new: TextIO) -> None:
    """Point every logging handler that writes to ``old`` at ``new``."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and handler.stream is old:
                handler.setStream(new)


def _native_stderr_to(path: Path | None) -> None:
    """Descriptor 2 to ``path``, ``sys.stderr`` and its handlers kept on the terminal through
    a copy of the descriptor; with ``None``, everything back as it was."""
    if path is None:
        if _State.original_stderr is not None:
            copy, sys.stderr = sys.stderr, _State.original_stderr
            copy.flush()
            os.dup2(copy.fileno(), 2)
            _restream(copy, sys.stderr)
            copy.close()
            _State.original_stderr = None
        return
    if _State.original_stderr is None:
        try:
            if sys.stderr.fileno() != 2:
                return
        except (AttributeError, OSError, ValueError):  # captured (a test's), or none
            return
        sys.stderr.flush()
        copy = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding,
                         errors="backslashreplace")  # fmt: skip
        _State.original_stderr, sys.stderr = sys.stderr, copy
        _restream(_State.original_stderr, copy)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)


def configure(command: str, verbose: bool = False) -> Path:
    """Apply the output policy for one command; returns its log file (created on first use).

    Idempotent: a second call (tests run several commands in one process) replaces the
    first call's file handler and filters.
    """
    import ray  # noqa: F401 - installs the "ray" logger's console handler
    import ray.data  # installs the "ray.data" logger's handlers

    directory = default_log_dir()
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = directory / f"{command}-{stamp}-{os.getpid()}.log"
    handler = logging.FileHandler(path, delay=True, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(logging.INFO)
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _State.handler is not None:
            logger.removeHandler(_State.handler)
        logger.addHandler(handler)
        for console in _console_handlers(logger):
            for old in [f for f in console.filters if isinstance(f, _ConsoleFilter)]:
                console.removeFilter(old)
            if not verbose:
                console.addFilter(_ConsoleFilter())
    file_only = logging.getLogger(_FILE_ONLY)
    file_only.setLevel(logging.INFO)
    file_only.propagate = False
    _native_stderr_to(None if verbose else path)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = verbose
    context.print_on_execution_start = verbose
    _State.path, _State.handler, _State.verbose = path, handler, verbose
    return path


def log_exception(err: BaseException) -> Path | None:
    """Write ``err``'s full traceback (a Ray task error's includes the remote one) to the
    log file and return its path; with ``--verbose`` print it to stderr too."""
    text = "".join(traceback.format_exception(err))
    if _State.verbose:
        print(text, file=sys.stderr, end="")
    if _State.handler is None:
        return None
    logging.getLogger(_FILE_ONLY).error("the command failed:\n%s", text)
    _State.handler.flush()
    return _State.path


def is_verbose() -> bool:
    """Whether this command was given ``--verbose``."""
    return _State.verbose


def train_log_level() -> str:
    """Ray Train's console level for a run (``ray.train.LoggingConfig`` of its RunConfig):
    INFO with ``--verbose``, else WARNING, so that its line per report and per checkpoint,
    forwarded from every worker, stays in Ray Train's log files."""
    return "INFO" if _State.verbose else "WARNING"


class _DeepSpeedCpuNotice(logging.Filter):
    """Drops DeepSpeed's "Setting accelerator to CPU. If you have GPU ..." warning, which
    ``import deepspeed`` logs once in every process of a machine without CUDA (the driver
    and each worker of a CPU run)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Setting accelerator to CPU")


def drop_deepspeed_cpu_notice() -> None:
    """Install :class:`_DeepSpeedCpuNotice` on DeepSpeed's logger (``"DeepSpeed"``), also
    before deepspeed is imported: DeepSpeed configures that same logger object when it is
    and keeps its filters. Called where :mod:`rayrec.train` is imported, so it holds in
    every process that imports deepspeed through rayrec. Only that notice is dropped; it
    decides nothing in rayrec, which puts a run on GPUs with ``--use-gpu`` alone (one of Ray's
    GPU resources per worker)."""
    deepspeed_logger = logging.getLogger("DeepSpeed")
    if not any(isinstance(f, _DeepSpeedCpuNotice) for f in deepspeed_logger.filters):
        deepspeed_logger.addFilter(_DeepSpeedCpuNotice())


def quiet_train_worker() -> None:
    """In a Ray Train worker without ``--verbose``: the worker's root logger at WARNING.

    Ray Train 2.60 logs its "Reporting training result N: TrainingReport(...)" line, one per
    report and worker, on a logger named by its source file's path, a child of the root logger
    that ``LoggingConfig(log_level=...)`` does not filter (it filters ``ray.train.*`` only).
    rayrec's own progress lines are prints, not log records, so they still reach the driver."""
    logging.getLogger().setLevel(logging.WARNING)
