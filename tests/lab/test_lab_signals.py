"""`interruptible`: a signal whose exception Python loses (it lands in a finalizer, whose
exceptions are ignored) still stops the command, without a traceback."""

from __future__ import annotations

import os
import signal

import pytest

from multihome.errors import LabInterrupted
from multihome.lab.runtime import interruptible


class _TakesTheSignal:
    """An object whose finalizer is running when SIGTERM's handler runs."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between these bytecodes, inside __del__
            pass


def test_a_signal_lost_in_a_finalizer_is_raised_when_the_block_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The demo once exited 0 after SIGTERM: the handler's LabInterrupted was raised inside
    asyncio's ``BaseEventLoop.__del__``, Python printed "Exception ignored ... Traceback"
    and the demo went on. Now the block goes on to its end, then the signal's
    LabInterrupted is raised (its caller removes the lab), and no traceback is printed."""
    reached_the_end = False
    with pytest.raises(LabInterrupted, match="interrupted by SIGTERM"), interruptible():
        _TakesTheSignal()  # dropped at once: its finalizer takes the signal
        reached_the_end = True
    assert reached_the_end
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_without_late_a_lost_signal_stays_lost() -> None:
    """attach-port and detach-port (``late=False``) say their steps were undone when
    interrupted: a signal lost after they finished is not raised as if they had been."""
    with interruptible("the port is not attached (every step was undone)", late=False):
        _TakesTheSignal()
