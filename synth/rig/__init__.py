"""The simulated sensor rig: real LSL outlets driven by a ground-truth AU timeline."""

from .config import RigConfig, load_rig_config
from .simulator import SimulatedRig

__all__ = ["RigConfig", "SimulatedRig", "load_rig_config"]
