"""Layer 0 of acquisition: configuration, logging, hashing, version and docstring helpers.

Public, so that :mod:`fusion`, :mod:`synth` and :mod:`data_cards` use them without reaching
into private modules. Nothing here imports another layer.
"""
