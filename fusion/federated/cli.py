"""Command-line front end of federated pretraining: ``emosync federate serve|join|local``.

Registered by ``emosync`` as a sub-command group. Libraries (Flower, torch) are imported inside each
command, so ``emosync --help`` stays light; bad input becomes ``fail(...)`` (exit 1). Ctrl-C stops
every Flower process the command started.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from acquisition.cli.common import RepeatableOptionsGroup, console, fail

app = typer.Typer(help="Federated pretraining on Flower: sites keep their sessions, only model weights travel.",
                  no_args_is_help=True, cls=RepeatableOptionsGroup)

ERRORS = (FileNotFoundError, FileExistsError, ValueError, KeyError, RuntimeError)


def _require_flower() -> None:
    try:
        import flwr  # noqa: F401
    except ImportError:
        raise fail('Federated pretraining needs Flower: pip install "emosync[federated]".') from None


def _config(config: str, overrides: list[str], **options):
    from .config import load_federated_config

    _require_flower()

    extra = [f"{k}={v}" for k, v in options.items() if v is not None]
    return load_federated_config(config, [*overrides, *extra])


def _tls(ca: Optional[Path], cert: Optional[Path] = None, key: Optional[Path] = None):
    from .processes import TLS

    return TLS(*(str(p) if p else None for p in (ca, cert, key)))


def _report(rows: list[dict], out: Path) -> None:
    last = rows[-1]
    privacy = ""
    if "epsilon" in last:
        privacy += (f", differential privacy: epsilon {last['epsilon']:.3g} at delta {last['delta']:g} "
                    f"(noise multiplier {last['noise_multiplier']:g}, clipping norm {last['clipping_norm']:g}; "
                    f"{last['accountant']})")
    if "secure_aggregation" in last:
        privacy += ", secure aggregation (SecAgg+)"
    console.print(f"Federated model after round {last['round']} ({last['strategy']}, {last['sites']} site(s) in the "
                  f"last round, loss {last['loss']:.4f}{privacy}) in {out / 'model'}; per round "
                  f"{out / 'rounds.jsonl'}, {out / 'rounds.png'}; sites {out / 'sites.json'}. Evaluate it: "
                  f"emosync evaluate {out} HELDOUT.h5")


def _run_and_report(run, out: Path, stopped: str) -> None:
    """Run a server-side job, turning bad input and Ctrl-C into the ``error:`` line, then report its rounds."""
    try:
        rows = run()
    except ERRORS as err:
        raise fail(str(err)) from None
    except KeyboardInterrupt:
        raise fail(f"Interrupted; {stopped}. Continue with --resume --out {out}.") from None
    _report(rows, out)


def local(
    sites: list[Path] = typer.Argument(..., help="One folder (its *.h5) per site."),
    _sites_flag: bool = typer.Option(False, "--sites", help="Optional word before the site folders (--sites A/ B/).",
                                     show_default=False),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (model/, config.yaml, rounds.jsonl, rounds.png)."),
    config: str = typer.Option("default", "--config", "-c", help="configs/federated name or a .yaml path."),
    rounds: Optional[int] = typer.Option(None, "--rounds", help="Rounds (default: the config's)."),
    strategy: Optional[str] = typer.Option(None, "--strategy", help="fedavg | fedprox | fedbuff (default: config)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last round."),
    overrides: list[str] = typer.Option([], "--set", help="Config override KEY=VALUE, repeatable."),
) -> None:
    """Run a whole federation on this machine: a SuperLink and one SuperNode per site on 127.0.0.1.

    Example: emosync federate local --sites site_a/ site_b/ site_c/ site_d/ --rounds 20 --out runs/fed1
    """
    from .launch import run_local

    _run_and_report(lambda: run_local(sites, _config(config, overrides, rounds=rounds, strategy=strategy), out,
                                      resume=resume),
                    out, stopped="every Flower process was stopped")


def serve(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder (model/, config.yaml, rounds.jsonl, rounds.png)."),
    config: str = typer.Option("default", "--config", "-c", help="configs/federated name or a .yaml path."),
    host: Optional[str] = typer.Option(None, "--host", help="Address to listen on (default: the config's, "
                                                            "127.0.0.1); anything else needs TLS."),
    port: Optional[int] = typer.Option(None, "--port", help="SuperLink HTTP port (default: the config's)."),
    ssl_ca_certfile: Optional[Path] = typer.Option(None, help="CA certificate (TLS; see docs/federated.md)."),
    ssl_certfile: Optional[Path] = typer.Option(None, help="SuperLink certificate signed by that CA."),
    ssl_keyfile: Optional[Path] = typer.Option(None, help="SuperLink private key."),
    node_auth: bool = typer.Option(False, "--node-auth", help="Accept only registered SuperNode keys "
                                                              "(flwr supernode register; needs TLS)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last round."),
    overrides: list[str] = typer.Option([], "--set", help="Config override KEY=VALUE, repeatable."),
) -> None:
    """The server of a federation across machines: a Flower SuperLink and the ServerApp.

    Example: emosync federate serve --config default --out runs/fed1
    """
    from .launch import serve as run_serve

    if node_auth and ssl_ca_certfile is None:
        raise fail("--node-auth needs TLS: pass --ssl-ca-certfile, --ssl-certfile and --ssl-keyfile too.")
    _run_and_report(lambda: run_serve(_config(config, overrides, host=host, port=port), out,
                                      tls=_tls(ssl_ca_certfile, ssl_certfile, ssl_keyfile), resume=resume,
                                      node_auth=node_auth),
                    out, stopped="the SuperLink was stopped")


def join(
    server: str = typer.Argument(..., help="The SuperLink's HOST:PORT."),
    sessions: list[Path] = typer.Option(..., "--sessions", help="This site's session files or folders."),
    site_name: str = typer.Option(..., "--site-name", help="Name of this site in the server's records."),
    root_certificates: Optional[Path] = typer.Option(None, help="The server's CA certificate (TLS); without it "
                                                                "only a loopback server is accepted."),
    auth_key: Optional[Path] = typer.Option(None, help="This site's private key (node authentication)."),
    workdir: Path = typer.Option(Path(".emosync-federate"), help="Folder for Flower's files and logs."),
) -> None:
    """Join a federation as one site: a Flower SuperNode training on local sessions until Ctrl-C.

    Example: emosync federate join 127.0.0.1:9460 --sessions site_a/ --site-name site-a
    """
    from .launch import join as run_join

    _require_flower()
    try:
        code = run_join(server, sessions, site_name, tls=_tls(root_certificates),
                        auth_key=str(auth_key) if auth_key else None, workdir=workdir)
    except ERRORS as err:
        raise fail(str(err)) from None
    except KeyboardInterrupt:
        console.print(f"Site {site_name!r} left the federation.")
        return
    if code:
        raise fail(f"The SuperNode exited with code {code}; see {workdir / site_name / 'logs'}.")


app.command("local")(local)
app.command("serve")(serve)
app.command("join")(join)
