"""Spike-driven transformers end to end (issue 6): Meta-SpikeFormer-style models on load_digits, trained on the
host, lowered exactly to the IR and deployed to the emulator, Loihi 2 and (where mappable) SpiNNaker.

Modules (they import torch; this package itself does not): :mod:`.layers` (multi-step LIF, its IR lowering and
the ">=" threshold handling, conv + BatchNorm with folding), :mod:`.attention` (SDSA v1 and the V2 linear
attention, and their IR lowering), :mod:`.model` (the digits model), :mod:`.train`, :mod:`.lower` (whole model ->
IR), :mod:`.deploy` (targets, accuracy, costs) and :mod:`.run_all` (the one command).
"""
