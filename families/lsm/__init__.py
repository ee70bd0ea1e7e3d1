"""Liquid state machines end to end (issue 5): a reference reservoir that *is* an IR graph, its NALSM-style
unsupervised phase, a host (or on-chip) linear readout, compilation to the emulator, Loihi 2 and SpiNNaker, and a
generator of large reservoirs for the scale benchmark.

Modules: :mod:`.connectivity` (3-D grid, E/I, distance-dependent probability, delays), :mod:`.model` (the IR
graph), :mod:`.encoding` (digits as spike trains), :mod:`.readout` (host readout), :mod:`.branching` (branching
factor estimators), :mod:`.plasticity` (astrocyte-modulated STDP), :mod:`.deploy` (targets, backends, mappings),
:mod:`.run_all` (the one command).
"""

from .connectivity import Connectivity, ReservoirSpec, generate, pairwise, sampled
from .model import LSM, InputSpec, NeuronSpec, build

__all__ = ["Connectivity", "ReservoirSpec", "generate", "pairwise", "sampled", "LSM", "InputSpec", "NeuronSpec",
           "build"]
