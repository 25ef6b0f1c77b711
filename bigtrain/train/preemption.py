"""SIGTERM, SIGUSR2 and Ctrl-C: finish the step, checkpoint, record `preempted`, exit with a
code a scheduler can requeue on (75). A second Ctrl-C exits at once. SIGTERM and SIGUSR2 come
from a cluster and are worded for one; Ctrl-C is the user's own choice and says how to go on.

SIGUSR2 is what SLURM (`--signal`) and submitit send before a job's time limit. A handler that
was installed before the run (submitit's, which requeues the job) is called after the
checkpoint is written, so the requeued job resumes from it."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("bigtrain")

#: exit status of a preempted run (EX_TEMPFAIL: "try again later"); requeue on it
EXIT_PREEMPTED = 75


class Preempted(BaseException):
    """Raised after the preemption checkpoint is written. A BaseException, like
    KeyboardInterrupt, so that Hydra does not record it as one failed job and go on."""

    def __init__(self, step: int, signal_name: str):
        self.step = step
        self.signal_name = signal_name
        #: how to continue (set by the task, which knows the run dir and the command)
        self.hint = "run the same command to continue"
        super().__init__(step, signal_name)

    @property
    def by_user(self) -> bool:
        """Ctrl-C, not a scheduler."""
        return self.signal_name == "SIGINT"

    def __str__(self) -> str:
        if self.by_user:
            return f"stopped at step {self.step}, checkpoint written; {self.hint}"
        return f"preempted by {self.signal_name} at step {self.step}; checkpoint written"


class PreemptionWatcher:
    """Turns SIGTERM/SIGUSR2/SIGINT into a flag the loop checks between compiled calls."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.signal_name = name
        if signum == signal.SIGINT:
            log.warning("Ctrl-C: stopping after this step and writing a checkpoint "
                        "(Ctrl-C again to stop at once, without one)")
        else:
            log.warning("%s received: finishing the step and writing a checkpoint "
                        "(Ctrl-C again to stop at once)", name)

    def __enter__(self) -> PreemptionWatcher:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def hand_over(self) -> None:
        """After the checkpoint: run the handler that was there before ours for the signal
        received (e.g. submitit's requeue), if it was a Python function."""
        if self.signal_name is None:
            return
        sig = signal.Signals[self.signal_name]
        previous = self._previous.get(sig)
        if callable(previous) and sig != signal.SIGINT:
            log.info("handing %s over to the handler installed before the run", sig.name)
            previous(sig, None)

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
