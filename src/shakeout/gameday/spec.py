"""What a target file allows a game day: ``game_day:`` (docs/gameday.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class GameDaySpec(BaseModel):
    """``max_hold_s``: how long, in all, a facilitator may hold a fault beyond its planned
    time (0, the default: no hold; a cluster's owners say how long they accept)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_hold_s: Annotated[float, Field(ge=0, le=3600)] = 0.0
