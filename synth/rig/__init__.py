"""The simulated sensor rig: real LSL outlets driven by a ground-truth AU timeline."""

from synth.rig.config import RigConfig, load_rig_config
from synth.rig.simulator import SimulatedRig

__all__ = ["RigConfig", "SimulatedRig", "load_rig_config"]
