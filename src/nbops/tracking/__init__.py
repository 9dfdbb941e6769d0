"""Experiment runs from notebook cells: lifecycle (:mod:`.run`), what a cell yields (:mod:`.capture`,
:mod:`.cell`), the one writer (:mod:`.writer`), the offline spool (:mod:`.spool`) and ``nbops sync`` (:mod:`.sync`)."""
from .run import Tracker, current, track

__all__ = ["Tracker", "current", "track"]
