"""Layer 4: analyses that read a session and add derived streams to it.

The AU vocabulary (:mod:`.action_units`), face tracking (:mod:`.face_tracking`, with the
bundled MediaPipe model located by :mod:`.face_model` and MediaPipe's native log lines kept
off the terminal by :mod:`.native_stderr`), expression spotting (:mod:`.spotting`) and
EMG/EEG signal processing (:mod:`.processing`). A new analysis goes here and writes its
results with ``SessionWriter.replace_derived``. The parameter docs the analyses share are
registered here (``%(fname_analysis)s``).
"""

from acquisition.utils.docs import add_doc

add_doc("fname_analysis", """
fname : path-like
    A closed session file (not being recorded); the analysis adds its derived streams to it.
""")
