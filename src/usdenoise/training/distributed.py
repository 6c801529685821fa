"""The process-group helpers training uses, from `usdenoise.core.distributed`.

They live in core so that `evaluate` and `denoise` (layers below training) share the same
rank/world/join code; this module keeps training's import path.
"""

from __future__ import annotations

from usdenoise.core.distributed import (
    World,
    barrier,
    broadcast_flag,
    is_main_process,
    pick_device,
    start,
    stop,
    sum_over_processes,
)

__all__ = ["World", "barrier", "broadcast_flag", "is_main_process", "pick_device", "start",
           "stop", "sum_over_processes"]
