"""emosync synth: FACS/AU timelines, the simulated rig and (later) AU-conditioned generators.

Synthetic data here is conditioned only on Action Units and nuisance variables,
never on a real person's identity.
"""
