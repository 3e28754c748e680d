"""Layer 4: analyses that read a session and add derived streams to it.

The AU vocabulary (:mod:`.action_units`), face tracking (:mod:`.face_tracking`, with the
bundled MediaPipe model located by :mod:`.face_model`), expression spotting
(:mod:`.spotting`) and EMG/EEG signal processing (:mod:`.processing`). A new analysis goes
here and writes its results with ``SessionWriter.replace_derived``.
"""
