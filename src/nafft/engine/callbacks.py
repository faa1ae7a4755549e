"""Training hooks: what the progress bar, the log and tests see of a run (called on rank 0 only)."""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any

log = logging.getLogger("nafft.engine.trainer")


class Callback:
    """Hooks called on rank 0 only; the CLI's progress bar is one. Override what you need."""

    def on_start(self, start: int, total: int, run_dir: Path) -> None:
        """Before the first step; `start` > 0 after a resume."""

    def on_step(self, iteration: int, stats: dict[str, float]) -> None:
        """After update `iteration` (1-based count of finished iterations) and its log/validation/checkpoint.

        `stats`: `loss` (this process's total loss), `lr`, `skipped` (1.0 when the step was skipped).
        """

    def on_log(self, record: dict[str, Any]) -> None:
        """A training record as written to metrics.jsonl."""

    def on_validation_progress(self, done: int, total: int) -> None:
        """During a validation: `done` of `total` image passes finished (0 at the start, `total` at the end)."""

    def on_validation(self, record: dict[str, Any]) -> None:
        """A validation record as written to metrics.jsonl."""

    def on_checkpoint(self, iteration: int, path: Path) -> None:
        """After the state of `iteration` was written to `path`."""

    def on_end(self, summary: dict[str, Any]) -> None:
        """After the last step, also when the run had nothing to do or stopped with an error."""


class LoggingCallback(Callback):
    """The default when `train()` is given no callback: progress as log lines (INFO, logger `nafft.engine.trainer`)."""

    def on_start(self, start: int, total: int, run_dir: Path) -> None:
        log.info("training %s: iteration %d of %d", run_dir, start, total)

    def on_log(self, record: dict[str, Any]) -> None:
        speed = record.get("it_per_s")
        log.info(
            "iteration %d: loss %.4f, lr %.3g%s", record["iter"], record.get("loss", math.nan), record["lr"],
            f", {speed:.2f} it/s" if speed else "",
        )  # fmt: skip

    def on_validation_progress(self, done: int, total: int) -> None:
        if done == 0:
            log.info("validating (%d image passes)", total)

    def on_end(self, summary: dict[str, Any]) -> None:
        log.info("finished at iteration %d in %s", summary["iteration"], summary["run_dir"])


def call(callback, hook: str, *args) -> None:
    """`callback.hook(*args)` when the callback has it (callbacks written before a hook existed lack it)."""
    method = getattr(callback, hook, None)
    if method is not None:
        method(*args)


@contextlib.contextmanager
def visible_logging():
    """While a caller that configured no logging at all trains from Python, show nafft's INFO lines on stderr.

    The `nafft` command and applications that set up logging keep full control: nothing is added for them.
    """
    package = logging.getLogger("nafft")
    if logging.getLogger().handlers or package.handlers:
        yield
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level = package.level
    package.addHandler(handler)
    if package.getEffectiveLevel() > logging.INFO:
        package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)
