"""The Flower app folder that ``flwr run`` bundles (a FAB) and ships to the SuperLink and the sites.

Flower runs apps from a folder with a ``pyproject.toml`` naming the ServerApp and ClientApp. Ours
holds two four-line modules that import :mod:`.server_app` and :mod:`.client_app` from the installed
emosync, so the bundle is a few hundred bytes and every site runs its own installed code (the
handshake checks that the versions match). The run config (run folder, federated config, resume)
goes into the same ``pyproject.toml``: the folder is written per run, under the run folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import tomli_w

from .config import FederatedConfig

#: One module per app, so that a ClientApp process (one per message) never imports the ServerApp.
MODULES = {"serverapp": ("emosync_federated_server", "server_app"),
           "clientapp": ("emosync_federated_client", "client_app")}
_SHIM = '''"""emosync federated pretraining: the {kind} comes from the installed emosync (fusion.federated)."""

from fusion.federated import {name} as _app

# a plain assignment: Flower finds the app by reading this file's syntax tree before importing it
{name} = _app.app
'''


def write_app(folder: str | os.PathLike, *, out: str | os.PathLike, config: FederatedConfig, resume: bool = False,
              expected_sites: int = 0) -> Path:
    """Write the Flower app folder for one run; returns it.

    Parameters
    ----------
    folder : path-like
        Where to write it (replaced if it exists).
    out : path-like
        The run folder the ServerApp writes (made absolute: the ServerApp runs elsewhere).
    config : FederatedConfig
        Sent to the ServerApp as JSON.
    resume : bool
        Continue the run in ``out``.
    expected_sites : int
        Sites to wait for before the handshake (0: ``min_sites``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pyproject = {
        "build-system": {"requires": ["hatchling"], "build-backend": "hatchling.build"},
        "project": {"name": "emosync-federated", "version": "1.0.0",
                    "description": "emosync federated pretraining", "dependencies": []},
        "tool": {"hatch": {"build": {"targets": {"wheel": {"packages": ["."]}}}},
                 "flwr": {"app": {"publisher": "emosync",
                                  "components": {kind: f"{module}:{name}"
                                                 for kind, (module, name) in MODULES.items()},
                                  "config": {"out": str(Path(out).resolve()),
                                             "federated-config": json.dumps(config.model_dump(mode="json")),
                                             "resume": bool(resume), "expected-sites": int(expected_sites)}}}},
    }
    (folder / "pyproject.toml").write_text(tomli_w.dumps(pyproject))
    for kind, (module, name) in MODULES.items():
        (folder / f"{module}.py").write_text(_SHIM.format(kind=kind, name=name))
    return folder
