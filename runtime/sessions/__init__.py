"""Checked sessions over spec, torch and Gymnasium environments, and the `make_session` factory."""

from runtime.sessions.base import CheckedSession, EnvironmentStepError, SessionStateError

__all__ = ["CheckedSession", "EnvironmentStepError", "SessionStateError"]
