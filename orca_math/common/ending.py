"""How every command ends: Ctrl-C and SIGTERM stop it (``finally`` blocks run, the stage is marked
unfinished, the output folder stays resumable), and a failure is one last line on stderr saying what
failed, where and what to do; the traceback goes to ``OUT/logs/COMMAND.log`` (and to the terminal
with ``-v``).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

RESUME = "rerun the same command to resume"


def root_cause(error: BaseException) -> BaseException:
    """The error a Ray wrapper carries: a worker's exception inside ``RayTaskError``, a UDF's inside
    Ray Data's ``UserCodeException``, a training worker's inside Ray Train's ``WorkerGroupError``."""
    if "ray" not in sys.modules:  # without Ray imported, nothing can be wrapped
        return error
    from ray.exceptions import RayTaskError, UserCodeException
    from ray.train import WorkerGroupError

    for _ in range(10):  # wrappers nest a few deep at most
        if isinstance(error, WorkerGroupError) and error.worker_failures:
            error = next(iter(error.worker_failures.values()))
        elif isinstance(error, RayTaskError) and error.cause is not None and error.cause is not error:
            error = error.cause
        elif isinstance(error, UserCodeException) and error.__cause__ is not None:
            error = error.__cause__
        else:
            break
    return error


# The last line of a traceback: "package.module.SomeError: message".
_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Exit|Interrupt)): (.*)$")


def describe(error: BaseException) -> tuple[str, str]:
    """(type name, first line of the message) of the error that made ``error``.

    A UDF's exception reaches the driver as ``RayTaskError(UserCodeException)`` whose own cause did
    not survive pickling: then it is the first error of the worker's traceback text."""
    cause = root_cause(error)
    if type(cause).__name__ == "UserCodeException" and cause.__cause__ is None:
        # A RayTaskError's text is the worker's traceback (its dual-class form keeps no other copy).
        text = re.sub(r"\x1b\[[0-9;]*m", "", getattr(error, "traceback_str", None) or str(error))
        first = text.split("The above exception was the direct cause of the following exception:")[0]
        lines = [line.strip() for line in first.splitlines() if line.strip()]
        found = _ERROR_LINE.match(lines[-1]) if lines else None
        if found:
            return found.group(1), found.group(2)
    message = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return type(cause).__name__, message


def output_folder(args: argparse.Namespace) -> Path | None:
    """The command's ``--out`` folder (the folder holding it when ``--out`` names a file)."""
    out = getattr(args, "out", None)
    if not out:
        return None
    out = Path(out)
    return out.parent if out.suffix else out


def unfinished_stage(folder: Path | None) -> str | None:
    """The stage the folder's manifest shows started and not done (the latest one, if several)."""
    from orca_math.common.manifest import RunManifest

    if folder is None or not (folder / "manifest.json").exists():
        return None
    try:
        stages = RunManifest(folder / "manifest.json").stages
    except ValueError:  # a manifest cut short by a kill: the line must still be printed
        return None
    open_ = [(e.get("started_at") or 0, name) for name, e in stages.items()
             if e.get("status") in ("pending", "running", "failed")]
    return max(open_)[1] if open_ else None


def what_next(error_type: str) -> str:
    """What to do before rerunning: fix the config or the data, or bring the teacher back."""
    if error_type in ("ConfigError", "ContextLengthError", "InfeasibleRunError", "StorageError", "ClusterTooSmallError"):
        return "fix the config, then rerun"
    if error_type == "RecordError":
        return f"fix that record, then {RESUME}"
    if error_type == "TeacherError":
        return f"check the teacher endpoint, then {RESUME}"
    return RESUME


def save_traceback(args: argparse.Namespace, error: BaseException) -> Path:
    """Append the full traceback to ``OUT/logs/COMMAND.log`` (a temp folder without ``--out``)."""
    from orca_math.common.storage import StorageError

    folder = None if isinstance(error, StorageError) else output_folder(args)  # not into a refused --out
    path = (folder / "logs" if folder else Path(tempfile.gettempdir()) / "orca-math") / f"{args.command}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(f"\n--- orca-math {args.command} failed at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        traceback.print_exception(error, file=f)
    return path


def failure_line(args: argparse.Namespace, error: BaseException, log_path: Path | None) -> str:
    """One line: which command and stage failed, the error that says why (endpoint, file, row, field
    for our typed errors), where the traceback is and what to do."""
    error_type, message = describe(error)
    if len(message) > 400:
        message = message[:400] + "..."
    stage = unfinished_stage(output_folder(args))
    where = f" stage {stage}" if stage and stage != args.command else ""
    line = f"orca-math {args.command}{where} failed: {error_type}: {message}"
    return line + (f" (traceback: {log_path}); " if log_path else "; ") + what_next(error_type)


def _ray_connected() -> bool:
    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def _leave_ray(callers_ray: bool) -> None:
    """Disconnect from Ray (stopping a local instance) before the last line, so no worker's log
    line, forwarded late, prints after it; unless Ray was up before the command: then it is the caller's."""
    if not callers_ray and _ray_connected():
        import ray

        ray.shutdown()


class _Stop:
    """Ctrl-C or SIGTERM arrived: which one, and whether the command has taken it.

    Python delivers a signal as ``KeyboardInterrupt`` wherever the main thread happens to be. When
    that is a finalizer (a library object's ``__del__``, run by the garbage collector: Ray Data's
    iterators join threads for seconds there), the interrupt is printed as "Exception ignored" and
    dropped, and the command runs on. So the first signal starts a thread that sends SIGINT to the
    main thread again every ``REDELIVER_S`` until the command has taken it.
    """

    REDELIVER_S = 5.0

    def __init__(self) -> None:
        self.name: str | None = None
        self.taken = threading.Event()

    def reset(self) -> None:
        self.name = None
        self.taken = threading.Event()

    def arrived(self, name: str) -> None:
        if self.name is None:
            self.name = name
            threading.Thread(target=self._redeliver, args=(self.taken,), name="orca-math-stop",
                             daemon=True).start()

    def _redeliver(self, taken: threading.Event) -> None:
        # A real signal (not _thread.interrupt_main) also wakes a main thread blocked in a system call.
        # During a Ray Train fit this is Ray's own Ctrl-C handler, which aborts the run on repeat.
        while not taken.wait(self.REDELIVER_S):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


_stop = _Stop()


def _on_signal(signum: int, frame) -> None:
    name = signal.Signals(signum).name
    if signum == signal.SIGTERM:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM while cleaning up ends the process at once
    _stop.arrived(name)
    raise KeyboardInterrupt(_stop.name)


@contextlib.contextmanager
def signals_stop_the_command():
    """Ctrl-C and SIGTERM (kill, `timeout`, a scheduler) stop a command the same way: a
    ``KeyboardInterrupt`` that ``run_to_one_last_line`` turns into its stopped line."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_to_one_last_line(args: argparse.Namespace) -> int:
    """Run the command: 0 when it finishes, 1 with a failure line, 130 with a stopped line."""
    started = time.perf_counter()
    callers_ray = _ray_connected()  # a program that calls main() with Ray up keeps its Ray
    _stop.reset()
    try:
        if getattr(args, "out", None):
            from orca_math.common.storage import check_run_folder

            check_run_folder(args.out)
        return int(args.func(args) or 0)
    except Exception as e:
        if _stop.name is None:  # else it is what a library made of our signal
            if args.verbose:
                traceback.print_exc()
            try:
                log_path = save_traceback(args, e)
            except OSError:
                log_path = None
            line = failure_line(args, e, log_path)
            _leave_ray(callers_ray)
            print(line, file=sys.stderr, flush=True)
            return 1
        signal_name = _stop.name
    except KeyboardInterrupt as e:
        signal_name = _stop.name or str(e) or "SIGINT"
    finally:
        _stop.taken.set()
    _leave_ray(callers_ray)
    stage = unfinished_stage(output_folder(args))
    print(f"orca-math {args.command}: stopped by {signal_name} after {time.perf_counter() - started:.0f}s"
          f"{f' in stage {stage}' if stage else ''}; {RESUME}", file=sys.stderr, flush=True)
    return 130
