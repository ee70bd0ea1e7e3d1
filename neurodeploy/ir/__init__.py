"""The neurodeploy intermediate representation: ops, graph, serialization."""

from neurodeploy.ir.graph import Graph

# Neuron models register their ops (e.g. LIFReset) on import.
from neurodeploy.ir.neurons import Compartment, compartment, model_of
from neurodeploy.ir.neurons.lif_reset import LIFReset
from neurodeploy.ir.ops import (
    IF,
    LI,
    OP_TYPES,
    AvgPool2d,
    Conv2d,
    CubaLIF,
    Delay,
    Dense,
    Flatten,
    Input,
    Op,
    Output,
    PlasticDense,
    QuantInfo,
    Scale,
    Sparse,
    SumPool2d,
)
from neurodeploy.ir.serialize import graph_from_bytes, graph_to_bytes, load_graph, save_graph

__all__ = ["Graph", "Op", "OP_TYPES", "QuantInfo", "Input", "Output", "Dense", "PlasticDense", "Sparse", "Conv2d",
           "SumPool2d", "AvgPool2d", "Flatten", "Scale", "Delay", "CubaLIF", "IF", "LI", "LIFReset", "save_graph",
           "load_graph", "graph_to_bytes", "graph_from_bytes", "Compartment", "compartment", "model_of"]
