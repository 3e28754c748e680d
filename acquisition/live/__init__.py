"""Layer 5: live streaming: the LSL recorder and the session/XDF player (replay)."""
