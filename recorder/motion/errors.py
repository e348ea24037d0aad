"""Errors of the motion package."""

from __future__ import annotations


class MotionError(Exception):
    """Base class of every error the motion package raises on purpose."""


class MotionInputError(MotionError):
    """A video file or configuration given to the offline detector cannot be used."""
