"""What ``emosync federate local|serve|join`` run: Flower processes wired to the emosync apps.

``local``: one SuperLink and one SuperNode per site, all on 127.0.0.1, then ``flwr run`` of the app
bundle; returns when the ServerApp has written the last round (or raises with the log's tail).
``serve``: the SuperLink and the run, waiting for sites to join. ``join``: one SuperNode that serves
its site until interrupted. All three stop every process they started on return, error or Ctrl-C.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from acquisition import logger

from .app_bundle import write_app
from .config import FederatedConfig
from .processes import TLS, FlowerProcesses, free_port, sigterm_as_interrupt


def _tail(path: Path, n: int = 25) -> str:
    lines = path.read_text(errors="replace").splitlines() if path.is_file() else []
    return "\n".join(lines[-n:])


def _site_names(sites: Sequence[str | os.PathLike]) -> list[str]:
    names = [Path(s).name or Path(s).resolve().name for s in sites]
    if len(set(names)) != len(names):  # site_a/ and other/site_a/: keep them apart
        names = [f"{n}-{i}" for i, n in enumerate(names)]
    return names


def _run_and_wait(procs: FlowerProcesses, out: Path, config: FederatedConfig, address: str, tls: TLS, *,
                  resume: bool, expected_sites: int) -> list[dict]:
    """Write the app, ``flwr run`` it, wait for the run to end; returns the rounds written."""
    app_dir = write_app(procs.root / "app", out=out, config=config, resume=resume, expected_sites=expected_sites)
    run = procs.run_app(app_dir, address, tls)
    while run.poll() is None:
        time.sleep(0.2)
    rows = [r for r in _read_rounds(out)]
    if not rows or rows[-1]["round"] < config.rounds:
        done = rows[-1]["round"] if rows else 0
        raise RuntimeError(f"The federated run stopped after round {done} of {config.rounds}. ServerApp log "
                           f"({procs.log('flwr-run')}):\n{_tail(procs.log('flwr-run'))}")
    return rows


def _read_rounds(out: Path) -> list[dict]:
    import json

    path = out / "rounds.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _check_out(out: Path, resume: bool) -> None:
    # the same rule the ServerApp applies, checked before any process starts
    ckpt = out / "federated.pt"
    if resume and not ckpt.is_file():
        raise FileNotFoundError(f"--resume: no federated.pt in {out}; start without --resume.")
    if not resume and ckpt.is_file():
        raise FileExistsError(f"{out} already holds a federated run (federated.pt); pass --resume to continue it "
                              "or choose another --out.")


def run_local(sites: Sequence[str | os.PathLike], config: FederatedConfig, out: str | os.PathLike, *,
              resume: bool = False, slowdown: Mapping[str, float] | None = None) -> list[dict]:
    """A whole federation on this machine over loopback; returns the per-round records.

    Parameters
    ----------
    sites : sequence of path-like
        One folder (its ``*.h5``), file or glob per site; the site's name is the folder's name.
    config : FederatedConfig
        ``host`` must be loopback; a free port is used if ``port`` is taken.
    out : path-like
        The run folder (:class:`~.run_folder.RunFolder`); Flower's files and logs go to ``out/.flower``.
    resume : bool
        Continue the run in ``out`` from its last round.
    slowdown : mapping of str to float | None
        Site name -> factor: that site waits ``factor - 1`` times its training time each round (a
        simulated straggler, for benchmarks).
    """
    out = Path(out)
    _check_out(out, resume)
    if len(sites) < config.min_sites:
        raise ValueError(f"{len(sites)} site(s) given, min_sites is {config.min_sites}: pass more --sites or "
                         "--set min_sites=N.")
    from .sessions import resolve_sessions

    names = _site_names(sites)
    for name, site in zip(names, sites):
        resolve_sessions([str(site)], site=name)  # a mistyped folder fails now, before any process starts
    with FlowerProcesses(out / ".flower") as procs, sigterm_as_interrupt():
        port = config.port if _port_free(config.host, config.port) else free_port(config.host)
        address = f"{config.host}:{port}"
        procs.superlink(config.host, port)
        for name, site in zip(names, sites):
            procs.supernode(name, address, sessions=[str(site)], slowdown=(slowdown or {}).get(name, 1.0))
        return _run_and_wait(procs, out, config, address, TLS(), resume=resume, expected_sites=len(sites))


def serve(config: FederatedConfig, out: str | os.PathLike, *, tls: TLS = TLS(), resume: bool = False,
          node_auth: bool = False) -> list[dict]:
    """The SuperLink and the ServerApp; sites join with :func:`join`. Returns the per-round records."""
    out = Path(out)
    _check_out(out, resume)
    with FlowerProcesses(out / ".flower") as procs, sigterm_as_interrupt():
        procs.superlink(config.host, config.port, tls, node_auth=node_auth)
        control = "127.0.0.1" if config.host in ("0.0.0.0", "::") else config.host
        logger.info("SuperLink on %s:%d; waiting for %d site(s) to join.", config.host, config.port, config.min_sites)
        return _run_and_wait(procs, out, config, f"{control}:{config.port}", tls, resume=resume, expected_sites=0)


def join(server: str, sessions: Sequence[str | os.PathLike], site_name: str, *, tls: TLS = TLS(),
         auth_key: str | None = None, workdir: str | os.PathLike = ".emosync-federate") -> int:
    """One site: a SuperNode serving ``sessions`` to ``server`` until it stops or Ctrl-C; returns its exit code."""
    from .sessions import resolve_sessions

    files = resolve_sessions([str(s) for s in sessions], site=site_name)  # fail here, not in the first round
    with FlowerProcesses(Path(workdir) / site_name) as procs, sigterm_as_interrupt():
        node = procs.supernode(site_name, server, sessions=[str(f) for f in files], tls=tls, auth_key=auth_key)
        logger.info("Site %r (%d session(s)) connected to %s; Ctrl-C to leave.", site_name, len(files), server)
        while node.poll() is None:
            time.sleep(0.5)
        return node.returncode

