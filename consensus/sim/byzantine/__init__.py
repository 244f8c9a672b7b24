"""Byzantine behaviours, one module each; the simulator picks them by name."""

from __future__ import annotations

from consensus.sim.byzantine.base import Behaviour, ByzantineNode
from consensus.sim.byzantine.conflict import Conflict
from consensus.sim.byzantine.equivocate import Equivocate
from consensus.sim.byzantine.garbage import Garbage
from consensus.sim.byzantine.invalid_block import InvalidBlock
from consensus.sim.byzantine.fat import Fat
from consensus.sim.byzantine.nuller import Nuller
from consensus.sim.byzantine.replay import Replay
from consensus.sim.byzantine.stale import Stale
from consensus.sim.byzantine.starve import Starve
from consensus.sim.byzantine.trap import Trap
from consensus.sim.byzantine.withhold import Withhold

BEHAVIOURS: dict[str, type[Behaviour]] = {
    behaviour.name: behaviour
    for behaviour in (
        Equivocate, Conflict, Withhold, InvalidBlock, Garbage, Nuller, Stale, Starve, Trap, Fat, Replay
    )
}

__all__ = ["BEHAVIOURS", "Behaviour", "ByzantineNode"]
