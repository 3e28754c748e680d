"""The command-line front ends of synth: ``simulate``, ``synth train/sample``, ``synth audit``."""
