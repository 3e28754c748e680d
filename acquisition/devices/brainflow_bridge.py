"""Publish a BrainFlow board's EEG and EMG channels as LSL streams.

BrainFlow drives some 60 biosignal boards (OpenBCI Cyton/Ganglion, Muse, Unicorn,
gForce...) behind one API, so bridging BrainFlow to LSL gives the recorder all of them
with no per-device code; ``emosync stream-device --board NAME`` wraps
:class:`BrainFlowBridge`. BrainFlow's ``SYNTHETIC_BOARD`` runs offline and is what the
tests stream from.

BrainFlow is an optional extra (``pip install "emosync[brainflow]"``): it is imported
lazily, in :func:`list_boards` and :class:`BrainFlowBridge`, never at module import.

What crosses the bridge, and how:

- values: BrainFlow reports ExG in microvolts; LSL streams carry volts (the project
  convention), so every value is multiplied by ``1e-6`` and sent as ``float32``;
- time stamps: BrainFlow's timestamp row holds Unix time (``time.time()`` at reception
  of each packet on the host); LSL time is ``pylsl.local_clock()``. Each sample is
  stamped ``unix_time - offset`` with ``offset = time.time() - pylsl.local_clock()``,
  the median of a few paired readings taken at start and refreshed every
  :data:`OFFSET_REFRESH_S` seconds so that a slewed wall clock does not drift away.
"""

from __future__ import annotations

import difflib
import logging
import threading
import time
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pylsl

from acquisition.utils.logs import logger, verbose
from acquisition.lsl import make_stream_info

MICROVOLTS_TO_VOLTS = 1e-6
"""Scale applied to every BrainFlow ExG value (BrainFlow gives µV, our LSL streams carry V)."""

OFFSET_REFRESH_S = 10.0
"""Seconds between re-estimations of the Unix -> LSL clock offset."""

RING_BUFFER_S = 60.0
"""Seconds of data BrainFlow's ring buffer holds between two drains (the pump drains every
``chunk_interval_s``; the buffer only matters if the pump stalls). BrainFlow's default
(450,000 samples x all rows) would allocate > 100 MB for nothing."""

NO_DATA_WARNING_S = 5.0
"""Warn once when a started board has delivered nothing for this many seconds."""

SharedRows = Literal["eeg", "emg", "both"]
SHARED_ROWS = ("eeg", "emg", "both")
_INSTALL_HINT = 'pip install "emosync[brainflow]"'


def load_brainflow() -> ModuleType:
    """Import ``brainflow.board_shim``, or raise an ImportError that says how to install it."""
    try:
        with warnings.catch_warnings():
            # On Python < 3.12 brainflow 5.x finds its C library with pkg_resources, imported (with a
            # deprecation warning) at the first BoardShim call, not at import: make that call here.
            warnings.filterwarnings("ignore", message=".*pkg_resources.*", category=UserWarning)
            warnings.filterwarnings("ignore", message=".*pkg_resources.*", category=DeprecationWarning)
            from brainflow import board_shim
            _configure_board_logger(board_shim)
    except ImportError as err:
        if getattr(err, "name", None) == "pkg_resources":
            raise ImportError(
                "brainflow is installed but needs pkg_resources, which setuptools>=81 no longer ships. "
                f"Run: {_INSTALL_HINT} (it pins setuptools<81), or pip install \"setuptools<81\".") from err
        raise ImportError(f"BrainFlow boards need the brainflow package. Run: {_INSTALL_HINT}") from err
    return board_shim


def _configure_board_logger(board_shim: ModuleType) -> None:
    # BrainFlow's C++ logger writes to stderr, even for harmless lookups such as asking a
    # board without EMG for its EMG rows; let it through only when we debug.
    try:
        if logger.isEnabledFor(logging.DEBUG):
            board_shim.BoardShim.enable_board_logger()
        else:
            board_shim.BoardShim.disable_board_logger()
    except board_shim.BrainFlowError as err:  # never worth failing a recording over
        logger.debug("Could not set BrainFlow's log level: %s", err)


def list_boards() -> list[str]:
    """Names of the boards BrainFlow supports (the members of ``brainflow.board_shim.BoardIds``).

    Returns
    -------
    names : list of str
        ``BoardIds`` names in id order, e.g. ``["PLAYBACK_FILE_BOARD", ..., "SYNTHETIC_BOARD",
        "CYTON_BOARD", ...]``; the ``NO_BOARD`` placeholder is left out.
    """
    board_shim = load_brainflow()
    return [board.name for board in sorted(board_shim.BoardIds, key=int) if board.name != "NO_BOARD"]


def resolve_board(board: str | int, board_shim: ModuleType) -> Any:
    """Return the ``BoardIds`` member for a name (case-insensitive, ``_BOARD`` optional) or an id."""
    board_ids = board_shim.BoardIds
    valid = [member for member in board_ids if member.name != "NO_BOARD"]
    if isinstance(board, str) and board.strip().lstrip("+-").isdigit():
        board = int(board.strip())
    if isinstance(board, int) and not isinstance(board, bool):
        for member in valid:
            if int(member) == board:
                return member
        key = str(board)
    elif isinstance(board, str):
        key = board.strip().upper().replace("-", "_").replace(" ", "_")
        by_name = {member.name: member for member in valid}
        for candidate in (key, f"{key}_BOARD"):
            if candidate in by_name:
                return by_name[candidate]
    else:
        raise TypeError(f"board must be a BoardIds name or an int id, got {type(board).__name__} {board!r}")
    names = [member.name for member in valid]
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.6) or difflib.get_close_matches(
        f"{key}_BOARD", names, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"Unknown BrainFlow board {board!r}.{hint} Valid names include SYNTHETIC_BOARD (offline test board), "
        "CYTON_BOARD, CYTON_DAISY_BOARD, GANGLION_BOARD, MUSE_2_BOARD and UNICORN_BOARD; names are "
        f"case-insensitive and the _BOARD suffix is optional (\"cyton\"), ids work too (-1, 0). All {len(names)} "
        "boards: acquisition.devices.brainflow_bridge.list_boards(), i.e. the members of "
        "brainflow.board_shim.BoardIds.")


def _input_params(board_shim: ModuleType, serial_port: str, board_params: dict[str, str] | None) -> Any:
    """Fill ``BrainFlowInputParams`` from ``serial_port`` and ``board_params`` (strings, cast as needed)."""
    params = board_shim.BrainFlowInputParams()
    params.serial_port = serial_port
    for key, value in (board_params or {}).items():
        if key not in vars(params):
            raise ValueError(
                f"Unknown BrainFlow input parameter {key!r}; valid keys: {sorted(vars(params))} "
                "(see brainflow.board_shim.BrainFlowInputParams).")
        if key == "serial_port" and serial_port and str(value) != serial_port:
            raise ValueError(f"serial_port given twice ({serial_port!r} and board_params {value!r}); give it once.")
        if key == "master_board":  # the board that a STREAMING/PLAYBACK_FILE board replays
            value = int(resolve_board(value, board_shim))
        elif isinstance(getattr(params, key), int):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ValueError(f"BrainFlow input parameter {key!r} must be an integer, got {value!r}.") from None
        else:
            value = str(value)
        setattr(params, key, value)
    return params


def clock_offset(n_readings: int = 5) -> float:
    """Estimate ``time.time() - pylsl.local_clock()`` in seconds.

    Each reading brackets one ``local_clock()`` call between two ``time.time()`` calls
    and pairs it with their midpoint; the median of ``n_readings`` discards a reading
    the scheduler interrupted.

    Parameters
    ----------
    n_readings : int
        Paired readings to take.

    Returns
    -------
    offset : float
        Seconds to subtract from a Unix time to get LSL time.
    """
    offsets = []
    for _ in range(max(1, n_readings)):
        before = time.time()
        lsl_now = pylsl.local_clock()
        after = time.time()
        offsets.append(0.5 * (before + after) - lsl_now)
    return float(np.median(offsets))


@dataclass
class BoardRows:
    """One signal kind of a board: which rows of BrainFlow's data array, under which channel labels."""

    kind: str  # "EEG" or "EMG"
    rows: list[int]
    labels: list[str]


def board_rows(board_shim: ModuleType, board_id: int, kind: str) -> list[int]:
    """The rows BrainFlow lists for ``kind`` (``"EEG"`` or ``"EMG"``) on a board; [] if it has none."""
    getter = {"EEG": board_shim.BoardShim.get_eeg_channels, "EMG": board_shim.BoardShim.get_emg_channels}[kind]
    try:
        return [int(row) for row in getter(board_id)]
    except board_shim.BrainFlowError:  # BrainFlow's answer for "this board has no such channel"
        return []


def plan_board_rows(board_shim: ModuleType, board_id: int, shared_rows: SharedRows) -> list[BoardRows]:
    """The EEG and EMG rows of a board with their labels (the bridge and the recording importer use the same).

    Rows BrainFlow lists as both EEG and EMG go where ``shared_rows`` says. EEG labels are the
    board's electrode names when it has one per row; EMG labels keep the board's EMG numbering,
    so EMG3 is the third EMG row whatever is left out. Kinds with no row left are omitted.
    """
    eeg_rows, emg_rows = board_rows(board_shim, board_id, "EEG"), board_rows(board_shim, board_id, "EMG")
    shared = set(eeg_rows) & set(emg_rows)
    try:
        eeg_names = list(board_shim.BoardShim.get_eeg_names(board_id))
    except board_shim.BrainFlowError:
        eeg_names = []
    if len(eeg_names) != len(eeg_rows):
        eeg_names = [f"EEG{i + 1}" for i in range(len(eeg_rows))]
    labels = {"EEG": dict(zip(eeg_rows, eeg_names)), "EMG": {row: f"EMG{i + 1}" for i, row in enumerate(emg_rows)}}
    plans = []
    for kind, rows in (("EEG", eeg_rows), ("EMG", emg_rows)):
        keep = [row for row in rows if row not in shared or shared_rows in (kind.lower(), "both")]
        if keep:
            plans.append(BoardRows(kind, keep, [labels[kind][row] for row in keep]))
    return plans


@dataclass
class _Stream:
    """One published signal kind: which BrainFlow rows, and under which LSL description."""

    kind: str  # "EEG" or "EMG"
    name: str
    source_id: str
    rows: list[int]
    labels: list[str]
    outlet: pylsl.StreamOutlet | None = None
    n_pushed: int = 0


class BrainFlowBridge:
    """Stream a BrainFlow board's EEG and EMG channels to LSL, one stream per signal kind.

    Streams are named ``<name_prefix>BrainFlow-<BOARD>-EEG`` (type ``EEG``) and
    ``<name_prefix>BrainFlow-<BOARD>-EMG`` (type ``EMG``), ``float32`` volts at the
    board's sampling rate, each sample stamped on the LSL clock from BrainFlow's own
    per-sample timestamp (see the module docstring). Channel metadata follow the LSL
    conventions (``desc/channels``: labels from ``BoardShim.get_eeg_names`` when the
    board has them, else ``EEG1..``/``EMG1..``; unit ``V``; type ``EEG``/``EMG``), and
    ``desc/brainflow`` records the board, its BrainFlow rows, the unit conversion and
    the time-stamp conversion.

    **Rows BrainFlow reports as both EEG and EMG.** On most boards (the synthetic board,
    Cyton, Ganglion, Daisy...) ``get_eeg_channels`` and ``get_emg_channels`` return the
    *same* rows: BrainFlow lists the analog front end under every ExG kind because only
    the electrode placement decides what it measures. Publishing those rows twice would
    double the bandwidth and put the same signal in a recording under two names, so
    ``shared_rows`` decides where they go:

    - ``"eeg"`` (default): shared rows go to the EEG stream only; the EMG stream carries
      the rows that are EMG only, and is not published when there are none (so the
      synthetic board and a Cyton publish a single EEG stream);
    - ``"emg"``: shared rows go to the EMG stream only (a facial-EMG montage on a Cyton),
      and the EEG stream keeps only EEG-only rows (on a Cyton: no EEG stream);
    - ``"both"``: shared rows appear in both streams.

    Parameters
    ----------
    board : str | int
        A ``BoardIds`` name, case-insensitive, ``_BOARD`` optional (``"synthetic"``,
        ``"cyton"``, ``"GANGLION_BOARD"``), or its int id (``-1``, ``0``).
    serial_port : str
        Serial port of serial boards (``/dev/ttyUSB0``, ``COM3``); empty for the others.
    name_prefix : str
        Prepended to every LSL stream name (to tell two bridges apart).
    source_prefix : str
        Start of the LSL ``source_id``: ``<source_prefix>:<BOARD>:<address>:<kind>``,
        where ``address`` is the serial port, or else the MAC / IP / serial number given
        in ``board_params``, or ``default``. The id is the same each run, so a recorder
        reconnects to a restarted bridge as to the same stream.
    chunk_interval_s : float
        Seconds between two drains of BrainFlow's buffer; each drain is pushed as one
        LSL chunk (latency vs. overhead: 0.05 s is 12 samples at 250 Hz).
    board_params : dict[str, str] | None
        Other ``BrainFlowInputParams`` fields as strings (``mac_address``, ``ip_address``,
        ``ip_port``, ``serial_number``, ``other_info``, ``timeout``, ``file``,
        ``master_board``...); integers are cast.
    shared_rows : {"eeg", "emg", "both"}
        Where rows that BrainFlow reports as both EEG and EMG are published (see above).
    verbose : bool | int | str | None
        Log level for this call (``"DEBUG"`` also lets BrainFlow's own logger print).

    Attributes
    ----------
    board_name : str
        The ``BoardIds`` name (``"SYNTHETIC_BOARD"``).
    board_id : int
        The ``BoardIds`` value (``-1``).
    stream_names : list of str
        LSL names of the streams :meth:`start` publishes, EEG first.

    Examples
    --------
    >>> bridge = BrainFlowBridge("synthetic")
    >>> bridge.run(duration_s=10)          # start, stream 10 s, stop
    """

    @verbose
    def __init__(self, board: str | int, *, serial_port: str = "", name_prefix: str = "",
                 source_prefix: str = "emosync-brainflow", chunk_interval_s: float = 0.05,
                 board_params: dict[str, str] | None = None, shared_rows: SharedRows = "eeg",
                 verbose: bool | int | str | None = None) -> None:
        self._bf = load_brainflow()
        if shared_rows not in SHARED_ROWS:
            raise ValueError(f"shared_rows must be one of {list(SHARED_ROWS)}, got {shared_rows!r}.")
        if not chunk_interval_s > 0:
            raise ValueError(f"chunk_interval_s must be > 0 seconds, got {chunk_interval_s!r}.")
        member = resolve_board(board, self._bf)
        self.board_name: str = member.name
        self.board_id: int = int(member)
        self.serial_port = serial_port
        self.chunk_interval_s = float(chunk_interval_s)
        self.shared_rows = shared_rows
        params = _input_params(self._bf, serial_port, board_params)
        try:
            self._board = self._bf.BoardShim(self.board_id, params)
        except self._bf.BrainFlowError as err:  # STREAMING/PLAYBACK_FILE boards without master_board
            raise ValueError(
                f"BrainFlow rejected the parameters of {self.board_name}: {err}. A STREAMING_BOARD or "
                "PLAYBACK_FILE_BOARD needs board_params={'master_board': 'CYTON_BOARD', ...}.") from err
        # a STREAMING/PLAYBACK_FILE board carries its master board's rows
        self._descr_id = int(self._board.get_board_id())
        self._ts_row = int(self._bf.BoardShim.get_timestamp_channel(self._descr_id))
        address = (serial_port or params.mac_address or params.ip_address or params.serial_number
                   or params.file or "default")
        self._streams = self._plan_streams(name_prefix, f"{source_prefix}:{self.board_name}:{address}")
        self.stream_names: list[str] = [stream.name for stream in self._streams]
        self._offset = 0.0
        self._next_offset_refresh = 0.0
        self._last_data = 0.0
        self._warned_no_data = False
        self._lock = threading.Lock()  # one drain at a time: the pump thread, or stop()'s final drain
        self._stop_event = threading.Event()
        self._pump_done = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._prepared = False
        self._streaming = False

    def _plan_streams(self, name_prefix: str, source_base: str) -> list[_Stream]:
        plans = plan_board_rows(self._bf, self._descr_id, self.shared_rows)
        if not plans:
            eeg_rows, emg_rows = (board_rows(self._bf, self._descr_id, kind) for kind in ("EEG", "EMG"))
            raise ValueError(
                f"BrainFlow board {self.board_name} reports no EEG or EMG rows to publish (EEG rows {eeg_rows}, "
                f"EMG rows {emg_rows}, shared_rows={self.shared_rows!r}); this bridge publishes only EEG and EMG.")
        return [_Stream(kind=plan.kind, name=f"{name_prefix}BrainFlow-{self.board_name}-{plan.kind}",
                        source_id=f"{source_base}:{plan.kind}", rows=plan.rows, labels=plan.labels) for plan in plans]

    @property
    def is_running(self) -> bool:
        """Whether the pump thread is alive and publishing."""
        return self._thread is not None and self._thread.is_alive()

    @verbose
    def start(self, *, verbose: bool | int | str | None = None) -> None:
        """Connect to the board, start its stream, create the LSL outlets and start the pump thread.

        Raises
        ------
        RuntimeError
            If the board cannot be opened or started (everything opened so far is released),
            or if the bridge is already running.
        """
        if self.is_running:
            raise RuntimeError(f"BrainFlowBridge for {self.board_name} is already running; call stop() first.")
        _configure_board_logger(self._bf)
        self._error = None
        self._stop_event.clear()
        self._pump_done.clear()
        try:
            self._board.prepare_session()
            self._prepared = True
            rate = self._sampling_rate()
            self._board.start_stream(max(1024, int(RING_BUFFER_S * rate)))
            self._streaming = True
        except self._bf.BrainFlowError as err:
            self.stop()
            raise RuntimeError(self._open_failure_message(err)) from err
        try:
            for stream in self._streams:
                stream.outlet = pylsl.StreamOutlet(self._stream_info(stream, rate))
                stream.n_pushed = 0
                logger.info("Publishing LSL stream %r: %s %d channels %s at %g Hz from BrainFlow rows %s, in V",
                            stream.name, stream.kind, len(stream.rows), ",".join(stream.labels), rate, stream.rows)
            self._offset = clock_offset()
            self._next_offset_refresh = time.monotonic() + OFFSET_REFRESH_S
            self._last_data = time.monotonic()
            self._warned_no_data = False
            self._thread = threading.Thread(target=self._pump, name=f"brainflow-{self.board_name}", daemon=True)
            self._thread.start()
        except BaseException:
            self.stop()
            raise

    def _sampling_rate(self) -> float:
        try:  # the prepared session's rate: some boards let the user configure it
            return float(self._board.get_board_sampling_rate())
        except self._bf.BrainFlowError:
            return float(self._bf.BoardShim.get_sampling_rate(self._descr_id))

    def _open_failure_message(self, err: BaseException) -> str:
        code = getattr(err, "exit_code", None)
        codes = self._bf.BrainFlowExitCodes
        port = f"serial port {self.serial_port!r}" if self.serial_port else "no serial port"
        hints = {
            int(codes.UNABLE_TO_OPEN_PORT_ERROR): "Check that the port exists and is this board's (dongle plugged "
            "in, e.g. /dev/ttyUSB0 or COM3), and that you have permission to open it (on Linux, join the 'dialout' "
            "group).",
            int(codes.ANOTHER_BOARD_IS_CREATED_ERROR): "Another session already holds this board with the same "
            "parameters (another bridge or program): stop it first.",
            int(codes.INVALID_ARGUMENTS_ERROR): "BrainFlow rejected the parameters: serial boards need "
            "serial_port=..., Bluetooth/Wi-Fi boards may need board_params (mac_address, ip_address, ...).",
            int(codes.BOARD_NOT_READY_ERROR): "The port opened but the board did not answer: check that it is "
            "powered on, in range, and that the port is the board's (not another device's).",
        }
        hint = hints.get(code, "Check the port or address, the device's power and connection, and your "
                               "permission to open the port.")
        return f"Could not start BrainFlow board {self.board_name} on {port}: {err}. {hint}"

    def _stream_info(self, stream: _Stream, rate: float) -> pylsl.StreamInfo:
        n = len(stream.rows)
        info = make_stream_info(
            stream.name, stream.kind, channel_count=n, nominal_srate=rate, channel_format="float32",
            source_id=stream.source_id, channel_labels=stream.labels, channel_units=["V"] * n,
            channel_types=[stream.kind] * n, manufacturer="BrainFlow")
        brainflow = info.desc().append_child("brainflow")
        brainflow.append_child_value("board", self.board_name)
        brainflow.append_child_value("board_id", str(self.board_id))
        if self._descr_id != self.board_id:
            brainflow.append_child_value("master_board_id", str(self._descr_id))
        try:
            brainflow.append_child_value("device", self._bf.BoardShim.get_device_name(self._descr_id))
            brainflow.append_child_value("brainflow_version", self._bf.BoardShim.get_version())
        except self._bf.BrainFlowError:
            pass
        brainflow.append_child_value("rows", ",".join(map(str, stream.rows)))
        brainflow.append_child_value("shared_rows", self.shared_rows)
        brainflow.append_child_value("unit_conversion", f"BrainFlow microvolts * {MICROVOLTS_TO_VOLTS:g} = volts")
        brainflow.append_child_value(
            "timestamp_conversion", f"BrainFlow Unix timestamp row {self._ts_row} - (time.time() - "
            f"pylsl.local_clock()), median of paired readings, refreshed every {OFFSET_REFRESH_S:g} s")
        return info

    def _pump(self) -> None:
        try:
            while not self._stop_event.wait(self.chunk_interval_s):
                self._drain()
        except BaseException as err:  # surfaced by run(); the thread must not die silently
            self._error = err
            logger.error("BrainFlow board %s stopped delivering data: %s", self.board_name, err)
        finally:
            self._pump_done.set()

    def _drain(self) -> int:
        """Push everything in BrainFlow's buffer; return the number of samples pushed per stream."""
        with self._lock:
            now = time.monotonic()
            if now >= self._next_offset_refresh:
                self._offset = clock_offset()
                self._next_offset_refresh = now + OFFSET_REFRESH_S
            data = self._board.get_board_data()  # (n_rows, n_samples) float64; drains the ring buffer
            n = data.shape[1] if data.ndim == 2 else 0
            if n == 0:
                if not self._warned_no_data and now - self._last_data > NO_DATA_WARNING_S:
                    logger.warning("BrainFlow board %s has sent no data for %.0f s; check its power and connection.",
                                   self.board_name, now - self._last_data)
                    self._warned_no_data = True
                return 0
            self._last_data = now
            self._warned_no_data = False
            timestamps = (data[self._ts_row] - self._offset).tolist()
            for stream in self._streams:
                if stream.outlet is None:
                    continue
                # (n_samples, n_channels) C-contiguous float32 volts: pylsl sends it without another copy
                chunk = np.ascontiguousarray((data[stream.rows] * MICROVOLTS_TO_VOLTS).T, dtype=np.float32)
                stream.outlet.push_chunk(chunk, timestamps)
                stream.n_pushed += n
            return n

    def stop(self) -> None:
        """Stop the pump, push what the board still buffers, stop the stream and release the board.

        Safe to call more than once, before :meth:`start`, and after a failed start.
        """
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 10 * self.chunk_interval_s))
            if self._thread.is_alive():
                logger.warning("BrainFlow pump thread for %s did not stop within its timeout.", self.board_name)
            self._thread = None
        if self._streaming:
            self._streaming = False
            try:
                self._board.stop_stream()
            except self._bf.BrainFlowError as err:
                logger.warning("BrainFlow board %s: stop_stream failed: %s", self.board_name, err)
        if self._prepared:
            if self._error is None and any(stream.outlet is not None for stream in self._streams):
                try:  # the samples that arrived since the last drain
                    self._drain()
                except Exception as err:  # noqa: BLE001 - releasing the board matters more
                    logger.warning("BrainFlow board %s: final drain failed: %s", self.board_name, err)
            self._prepared = False
            try:
                self._board.release_session()
            except self._bf.BrainFlowError as err:
                logger.warning("BrainFlow board %s: release_session failed: %s", self.board_name, err)
            else:
                logger.info("BrainFlow board %s released; pushed %s", self.board_name, self.stats())
        for stream in self._streams:
            stream.outlet = None  # destroys the outlet: the stream disappears from the network

    @verbose
    def run(self, duration_s: float | None = None, *, stop_event: threading.Event | None = None,
            verbose: bool | int | str | None = None) -> None:
        """Start (unless running), stream until a deadline, an event or an error, then stop.

        Parameters
        ----------
        duration_s : float | None
            Seconds to stream; ``None`` streams until ``stop_event`` is set or Ctrl-C.
        stop_event : threading.Event | None
            Set it (from another thread) to return early.
        verbose : bool | int | str | None
            Log level for this call.

        Raises
        ------
        RuntimeError
            If the board cannot be started, or stops delivering data (e.g. unplugged).
        """
        if not self.is_running:
            self.start()
        deadline = None if duration_s is None else time.monotonic() + float(duration_s)
        try:
            while not self._pump_done.is_set():
                if stop_event is not None and stop_event.is_set():
                    break
                remaining = 0.1 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._pump_done.wait(min(0.1, remaining))
            if self._error is not None:
                raise RuntimeError(
                    f"BrainFlow board {self.board_name} stopped delivering data: {self._error}. Check its "
                    "connection and power, then start the bridge again.") from self._error
        finally:
            self.stop()

    def stats(self) -> dict[str, int]:
        """Samples pushed so far on each stream since the last :meth:`start`, by LSL stream name."""
        return {stream.name: stream.n_pushed for stream in self._streams}

    def __enter__(self) -> BrainFlowBridge:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<BrainFlowBridge {self.board_name} {state} streams={self.stream_names}>"
