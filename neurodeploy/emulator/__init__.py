"""Bit-accurate Loihi emulator (integer mode) and float reference simulator (float mode)."""

from neurodeploy.emulator.engine import Program, SimResult, simulate

__all__ = ["Program", "SimResult", "simulate"]
