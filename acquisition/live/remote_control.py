"""Drive the recorder like LabRecorder: a TCP server that speaks LabRecorder's remote-control protocol.

Experiment software that already starts and stops LabRecorder over its socket (``select all``,
``filename {...}``, ``start``, ``stop``) can drive ``emosync record --remote [HOST:]PORT`` unchanged.
:class:`RemoteController` keeps what LabRecorder's window keeps between commands (the file-name fields,
the stream selection, the recording in progress) and carries out one line at a time;
:class:`RemoteControlServer` is the TCP server (one thread per client, default 127.0.0.1:22345) that
feeds it lines and writes one reply line per command line: ``OK`` (LabRecorder's reply) or
``ERROR: <what was wrong and what to send instead>``. Parsing and file-name templates are in
:mod:`acquisition.live.remote_protocol`.

One recording at a time; it belongs to the server, not to a connection, so a client that disconnects
mid-recording does not stop it, and any client can send ``stop``. A recording that ends on its own
(a stream failed, the disk filled) is closed at once and the next ``stop`` reports why.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pylsl

from acquisition.live.recorder import (RecorderSettings, RecordingError, SessionRecorder, StreamNotFoundError,
                                       StreamOpenError)
from acquisition.live.remote_protocol import (DEFAULT_HOST, DEFAULT_PORT, FilenameFields, RemoteCommandError,
                                              apply_filename_options, check_template, next_session_path,
                                              parse_command, xdf_renamed)
from acquisition.utils.logs import logger

#: LabRecorder's reply to every line it reads.
REPLY_OK = "OK"
#: Longest command line accepted, in bytes (a ``filename`` line with long paths is well under 1 kB).
MAX_LINE_BYTES = 65536


@dataclass
class _Recording:
    """The recording in progress: its recorder, file, and the event that ends its watchdog."""

    recorder: SessionRecorder
    fname: Path
    started: float = field(default_factory=time.monotonic)
    ended: threading.Event = field(default_factory=threading.Event)


class RemoteController:
    """Carry out LabRecorder remote-control commands on a :class:`SessionRecorder`, one recording at a time.

    Parameters
    ----------
    root : path-like
        The study root folder (LabRecorder's ``StudyRoot``); ``{root:...}`` changes it. Every recording
        is written inside the root folder in force at ``start``.
    template : str | None
        The path template (``%p %s %b %n %r %a %m``); None is LabRecorder's BIDS layout.
    streams : sequence of str
        LSL queries selected at start-up (as ``emosync record --stream``); empty selects every stream,
        which is what LabRecorder's remote ``start`` records. ``select all`` / ``select none`` change it.
    camera : int | str | None
        Also capture this OpenCV camera in every recording.
    video_compression : str | dict
        As :class:`SessionRecorder`.
    subject_id : str
        Subject id stored when no ``{participant:...}`` was sent; with one it is ``sub-<participant>``.
    notes : str
        Free text stored in every session (the remote fields are appended).
    allow_missing : bool
        As :class:`SessionRecorder`.
    settings : RecorderSettings | None
        Timing of the recorder.
    """

    def __init__(self, root: str | Path = ".", *, template: str | None = None, streams: Sequence[str] = (),
                 camera: int | str | None = None, video_compression: str | dict[str, str] = "none",
                 subject_id: str = "sub-unknown", notes: str = "", allow_missing: bool = False,
                 settings: RecorderSettings | None = None) -> None:
        if template is not None:
            check_template(template)
        self.fields = FilenameFields(root=Path(root).expanduser(), template=template)
        self.streams = list(streams)
        self.all_streams = not self.streams
        self._recorder_args = dict(camera=camera, video_compression=video_compression, allow_missing=allow_missing,
                                   settings=settings)
        self._subject_id, self._notes = subject_id, notes
        self._lock = threading.Lock()
        self._active: _Recording | None = None
        self._ended_on_its_own: str | None = None
        #: Session files written so far, in order (a recording that failed to start is not listed).
        self.recorded: list[Path] = []

    @property
    def recording(self) -> Path | None:
        """The file being recorded, or None when idle."""
        active = self._active
        return None if active is None else active.fname

    def handle_line(self, line: str) -> str:
        """Carry out one protocol line and return the reply line (without its newline).

        Parameters
        ----------
        line : str
            One line as received from a client.

        Returns
        -------
        reply : str
            ``"OK"`` when done; ``"ERROR: ..."`` saying what was wrong and what to send instead. Nothing
            that was recorded is lost on an error, and the controller keeps serving.
        """
        try:
            command = parse_command(line)
            if command.name == "start":
                self.start()
            elif command.name == "stop":
                self.stop()
            elif command.name == "update":
                self.update()
            elif command.name == "select":
                self.select(command.selection == "all")
            elif command.name == "filename":
                self.set_filename(command.options or {})
        except RemoteCommandError as err:
            logger.warning("Remote command %r refused: %s", line.strip()[:200], err)
            return _error_line(str(err))
        except Exception as err:  # noqa: BLE001 -- one bad command must not take the server down
            logger.exception("Remote command %r failed", line.strip()[:200])
            return _error_line(f"{type(err).__name__}: {err}")
        return REPLY_OK

    # -- commands ------------------------------------------------------------
    def select(self, everything: bool) -> None:
        """``select all`` (every stream, now and later) or ``select none``; applies from the next ``start``."""
        with self._lock:
            self.all_streams, self.streams = everything, []
            logger.info("Remote: %s streams selected%s", "all" if everything else "no",
                        " (for the next recording)" if self._active else "")

    def set_filename(self, options: dict[str, str]) -> None:
        """Apply a ``filename`` command's options (all or none of them); they apply from the next ``start``."""
        with self._lock:
            self.fields = apply_filename_options(self.fields, options)
            if self._active is not None:
                logger.info("Remote: file name fields changed while recording %s; they apply to the next start",
                            self._active.fname)

    def update(self) -> None:
        """Look for streams again (LabRecorder refreshes its list) and log what is visible."""
        found = pylsl.resolve_streams(wait_time=0.5)
        logger.info("Remote update: %d stream(s) visible: %s", len(found),
                    ", ".join(f"{i.name()} ({i.type()})" for i in found) or "none")

    def start(self) -> Path:
        """Start recording to the file the fields name; returns it once the recording is under way.

        Raises
        ------
        RemoteCommandError
            If a recording is in progress (it goes on), nothing is selected, the template cannot be
            used, or the recorder could not start (no stream found, folder not writable...).
        """
        with self._lock:
            if self._active is not None:
                raise RemoteCommandError(
                    f"Already recording to {self._active.fname} (for {time.monotonic() - self._active.started:.0f}"
                    " s); that recording goes on. Send 'stop' first, then 'start' for a new file.")
            if not self.all_streams and not self.streams and self._recorder_args["camera"] is None:
                raise RemoteCommandError("No stream is selected (after 'select none'). Send 'select all', then "
                                         "'start'.")
            self._ended_on_its_own = None
            fields, fname = next_session_path(self.fields)
            self.fields = fields
            if xdf_renamed(fields):
                logger.info("The template ends in .xdf: emosync writes HDF5 sessions, so the file is %s", fname)
            recorder = self._start_recorder(fields, fname)
            active = _Recording(recorder, fname)
            self._active = active
            self.recorded.append(fname)
            threading.Thread(target=self._watch, args=(active,), name="remote-watchdog", daemon=True).start()
            logger.info("Remote start: recording %s", fname)
            return fname

    def stop(self) -> dict[str, int]:
        """Stop the recording, close its file and return the samples written per stream.

        Raises
        ------
        RemoteCommandError
            If nothing is being recorded (saying why when the last recording ended on its own), or the
            recording had a failure (the file is closed and keeps everything recorded).
        """
        with self._lock:
            active = self._active
            if active is None:
                reason, self._ended_on_its_own = self._ended_on_its_own, None
                if reason:
                    raise RemoteCommandError(f"Not recording: the last recording already stopped on its own: {reason}")
                raise RemoteCommandError("Not recording: there is nothing to stop. Send 'start' to record.")
            return self._finish(active)

    def close(self) -> None:
        """Stop the recording in progress, if any (the server is shutting down); log instead of raising."""
        with self._lock:
            if self._active is not None:
                try:
                    self._finish(self._active)
                except RemoteCommandError as err:
                    logger.error("%s", err)

    # -- internals -----------------------------------------------------------
    def _start_recorder(self, fields: FilenameFields, fname: Path) -> SessionRecorder:
        """Create the folders and start a recorder on ``fname``; errors become :class:`RemoteCommandError`."""
        labels = fields.labels()
        notes = "; ".join(filter(None, [self._notes, "LabRecorder remote control: " + ", ".join(
            f"{name}={labels[name]}" for name in ("participant", "session", "task", "run", "acquisition",
                                                  "modality") if labels[name])]))
        subject = f"sub-{labels['participant']}" if fields.participant else self._subject_id
        try:
            fname.parent.mkdir(parents=True, exist_ok=True)  # LabRecorder creates the folders too
            # "rename": a template without a run number reuses its name, so the old file becomes
            # <name>_oldN.h5 (LabRecorder's rule) instead of being overwritten.
            recorder = SessionRecorder(fname, streams=self.streams, all_streams=self.all_streams, subject_id=subject,
                                       notes=notes, if_exists="rename", **self._recorder_args)  # type: ignore[arg-type]
            recorder.start()
        except (StreamNotFoundError, ValueError, OSError, RuntimeError) as err:
            raise RemoteCommandError(f"Could not start recording {fname}: {err}") from None
        return recorder

    def _finish(self, active: _Recording) -> dict[str, int]:
        """Stop ``active`` and close its file (called with the lock held)."""
        active.ended.set()
        try:
            counts = active.recorder.stop()
        except (StreamOpenError, RecordingError) as err:
            raise RemoteCommandError(f"The recording to {active.fname} stopped with a failure: {err}") from None
        finally:
            self._active = None  # only now: `recording` stays set until the file is closed
        logger.info("Remote stop: wrote %s (%s)", active.fname,
                    ", ".join(f"{name} {n} samples" for name, n in counts.items()) or "no samples")
        return counts

    def _watch(self, active: _Recording) -> None:
        """Close a recording that stopped on its own (a failed stream, a full disk) without waiting for 'stop'."""
        active.recorder.wait(stop_event=active.ended)
        if active.ended.is_set():
            return
        with self._lock:
            if self._active is not active:
                return
            try:
                self._finish(active)
            except RemoteCommandError as err:
                self._ended_on_its_own = str(err)
                logger.error("%s", err)
            else:
                self._ended_on_its_own = f"the recording to {active.fname} ended before 'stop' was sent"


def _error_line(message: str) -> str:
    """One reply line: protocol replies are line-based, so a message never spans lines."""
    return "ERROR: " + " ".join(message.split())


class _LineHandler(socketserver.StreamRequestHandler):
    """One client connection: read lines, hand them to the controller, write one reply line each."""

    server: RemoteControlServer

    def handle(self) -> None:
        peer = f"{self.client_address[0]}:{self.client_address[1]}"
        logger.info("Remote-control client %s connected", peer)
        while True:
            try:
                raw = self.rfile.readline(MAX_LINE_BYTES + 1)
            except OSError:
                break
            if not raw:
                break
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while (rest := self.rfile.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of the over-long line, then go on with the next one
                reply = _error_line(f"Line longer than {MAX_LINE_BYTES} bytes ignored. Send one command per line.")
            else:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    reply = _error_line("The line is not UTF-8 text; it was ignored. Send commands as UTF-8.")
                else:
                    reply = self.server.controller.handle_line(line)
            try:
                self.wfile.write((reply + "\n").encode("utf-8"))
            except OSError:  # the client left before the reply; what it asked for was done
                break
        logger.info("Remote-control client %s disconnected%s", peer,
                    f"; still recording {self.server.controller.recording}" if self.server.controller.recording
                    else "")


class RemoteControlServer(socketserver.ThreadingTCPServer):
    """A TCP server for LabRecorder's remote-control protocol, serving in a background thread.

    Parameters
    ----------
    controller : RemoteController
        What carries out the commands.
    host : str
        Address to listen on; loopback by default. ``"0.0.0.0"`` accepts other machines: anyone who can
        reach the port can then start and stop recordings.
    port : int
        TCP port (LabRecorder's 22345 by default; 0 picks a free one, see :attr:`port`).

    Raises
    ------
    OSError
        If the port cannot be opened (in use, e.g. by LabRecorder with remote control enabled).
    """

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, controller: RemoteController, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.controller = controller
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), _LineHandler)
        except OSError as err:
            raise OSError(err.errno, f"Cannot listen on {host}:{port} for remote control: {err.strerror}. Is "
                                     "LabRecorder (with remote control on) or another `emosync record --remote` "
                                     "using it? Choose another port with --remote HOST:PORT.") from None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return str(self.server_address[0])

    @property
    def port(self) -> int:
        """The TCP port the server listens on (the chosen one when created with port 0)."""
        return int(self.server_address[1])

    def start(self) -> RemoteControlServer:
        """Serve in a background thread; returns ``self``."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="remote-control", daemon=True)
        self._thread.start()
        logger.info("Listening for LabRecorder remote-control commands on %s:%d", self.host, self.port)
        return self

    def close(self) -> None:
        """Stop serving, close the socket, and stop the recording in progress (its file is closed properly)."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
        self.controller.close()


__all__ = ["MAX_LINE_BYTES", "REPLY_OK", "RemoteControlServer", "RemoteController"]
