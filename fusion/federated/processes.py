"""Flower's processes (SuperLink, SuperNodes, ``flwr run``), started and always stopped.

Each process starts in a new session (its own process group), so stopping it also stops what it
spawned (the SuperLink's SuperExec and ServerApp, a SuperNode's ClientApps): :meth:`FlowerProcesses.close`
sends SIGTERM to every group, waits, then SIGKILLs what is left. It runs on normal exit, on an error
and on Ctrl-C or SIGTERM (:func:`sigterm_as_interrupt`), so no Flower process outlives the command.

Every process gets its own ``FLWR_HOME`` under the run folder's ``.flower/`` (installed app
bundles, the CLI's connection file) and its own log in ``.flower/logs/``; nothing is written to
``~/.flwr``. Local runs bind everything to 127.0.0.1 and use ``--insecure`` (plain HTTP, loopback
only); see docs/federated.md for TLS and node authentication.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from acquisition import logger


@dataclass
class TLS:
    """Certificates for a TLS SuperLink (``None`` everywhere: insecure, allowed on loopback only)."""

    ca_cert: str | None = None      # the CA that signed the SuperLink's certificate (sites and CLI verify with it)
    server_cert: str | None = None  # SuperLink only
    server_key: str | None = None   # SuperLink only

    @property
    def insecure(self) -> bool:
        return self.ca_cert is None


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_insecure(host: str, tls: TLS) -> None:
    """Refuse plain HTTP to anything but loopback: model updates would cross the network unencrypted."""
    if tls.insecure and not is_loopback(host):
        raise ValueError(f"Without TLS certificates the federation runs on loopback only, got host {host!r}. Pass "
                         "--ssl-ca-certfile/--ssl-certfile/--ssl-keyfile (docs/federated.md shows how to make them) "
                         "or use 127.0.0.1.")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for_port(host: str, port: int, timeout_s: float, process: subprocess.Popen | None = None) -> None:
    """Block until ``host:port`` accepts connections; RuntimeError if ``process`` exits first or on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with code {process.returncode} before listening on "
                               f"{host}:{port}; see its log.")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"Nothing listens on {host}:{port} after {timeout_s:.0f} s.")


class FlowerProcesses:
    """The Flower processes of one command, under ``root`` (``<run folder>/.flower``).

    Use as a context manager: every process started through it is stopped on exit.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> FlowerProcesses:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def start(self, name: str, args: Sequence[str]) -> subprocess.Popen:
        """Start ``args`` in its own process group, with ``FLWR_HOME`` = ``root/home-<name>``."""
        home = self.root / f"home-{name}"
        home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "FLWR_HOME": str(home), "PYTHONUNBUFFERED": "1"}
        with open(self.log(name), "ab") as log:
            process = subprocess.Popen(list(args), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env, start_new_session=True)
        self.processes[name] = process
        logger.info("Started %s (pid %d): %s", name, process.pid, " ".join(args))
        return process

    def superlink(self, host: str, port: int, tls: TLS = TLS(), *, node_auth: bool = False) -> subprocess.Popen:
        """Start the SuperLink (one HTTP port for its Fleet, Control and Runtime APIs) and wait for it."""
        check_insecure(host, tls)
        args = ["flower-superlink", "--host", host, "--port", str(port), "--disable-runtime-dependency-installation"]
        if tls.insecure:
            args.append("--insecure")
        else:
            args += ["--ssl-ca-certfile", tls.ca_cert, "--ssl-certfile", tls.server_cert, "--ssl-keyfile",
                     tls.server_key]
        if node_auth:
            args.append("--enable-supernode-auth")
        process = self.start("superlink", args)
        wait_for_port("127.0.0.1" if host in ("0.0.0.0", "::") else host, port, 60, process)
        return process

    def supernode(self, name: str, superlink: str, *, sessions: Sequence[str], tls: TLS = TLS(),
                  auth_key: str | None = None, slowdown: float = 1.0) -> subprocess.Popen:
        """Start one site's SuperNode connected to ``superlink`` (``host:port``)."""
        check_insecure(superlink.rsplit(":", 1)[0].strip("[]"), tls)
        node_config = f"sessions={json.dumps(os.pathsep.join(str(Path(s).resolve()) for s in sessions))} " \
                      f"site-name={json.dumps(name)}" + (f" slowdown={float(slowdown)}" if slowdown != 1 else "")
        args = ["flower-supernode", "--superlink", superlink, "--port", str(free_port()), "--node-config", node_config]
        args += ["--insecure"] if tls.insecure else ["--root-certificates", tls.ca_cert]
        if auth_key:
            args += ["--auth-supernode-private-key", auth_key]
        return self.start(f"site-{name}", args)

    def run_app(self, app_dir: str | os.PathLike, superlink: str, tls: TLS = TLS()) -> subprocess.Popen:
        """``flwr run APP`` against ``superlink``, with a connection file of our own; logs streamed to its log."""
        home = self.root / "home-flwr-run"
        home.mkdir(parents=True, exist_ok=True)
        connection: dict = {"address": superlink}
        if tls.insecure:
            connection["insecure"] = True
        else:
            connection["root-certificates"] = str(Path(tls.ca_cert).resolve())
        (home / "config.toml").write_text(tomli_w.dumps({"superlink": {"default": "emosync", "emosync": connection}}))
        return self.start("flwr-run", ["flwr", "run", str(app_dir), "emosync", "--stream"])

    def close(self, timeout_s: float = 10.0) -> None:
        """SIGTERM every process group (newest first), wait up to ``timeout_s``, then SIGKILL the rest.

        Descendants that left the group (Flower may start them in sessions of their own) are found
        through ``/proc`` before anything is signalled, and get the same treatment.
        """
        strays = {pid for p in self.processes.values() for pid in descendants(p.pid)}
        for process in reversed(list(self.processes.values())):
            _signal_group(process, signal.SIGTERM)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %d) ignored SIGTERM for %.0f s: killed.", name, process.pid, timeout_s)
        for process in self.processes.values():
            _signal_group(process, signal.SIGKILL)  # children left in the group (SuperExec, apps) go too
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        for pid in strays:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.processes.clear()


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, grandchildren, ...), read from ``/proc``; [] elsewhere."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # field 4 of /proc/PID/stat is the parent pid; the command name before it may hold spaces
            ppid = int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)  # start_new_session: the group id is the leader's pid


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises KeyboardInterrupt, so cleanup runs as it does on Ctrl-C."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
