"""Layer 6: the command-line front ends of acquisition, one module per command group.

As in ``mne/commands``: each module holds thin typer functions that parse options, call the
library (imported inside the function, so ``emosync --help`` stays fast) and print results.
``emosync.py`` registers them.
"""
