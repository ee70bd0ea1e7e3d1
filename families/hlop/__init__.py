"""HLOP (issue 7, item 1): Hebbian learning based orthogonal projection for continual learning of spiking networks
(Xiao et al., ICLR 2024), a reference learner on split ``load_digits``.

Modules: :mod:`.learner` (the SNN, the lateral subspace neurons with their Hebbian rule, the projected training
loop, the fine-tuning baseline, the continual-learning metrics), :mod:`.deploy` (export of the trained inference
network to the IR and its accuracy on the quantized emulator), :mod:`.oja` (Oja's subspace rule on chip: a residual
network whose feed-forward and tied feedback synapses learn the same local integer product) and :mod:`.onchip` (the
continual-learning experiment on the deployed integer network, over one or three seeds). torch is imported lazily,
so importing this package works without it.
"""

from .learner import HLOPConfig, average_accuracy, backward_transfer, run_sequence, split_digits

__all__ = ["HLOPConfig", "average_accuracy", "backward_transfer", "run_sequence", "split_digits"]
