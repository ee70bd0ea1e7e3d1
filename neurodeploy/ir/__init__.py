"""The neurodeploy intermediate representation: ops, graph, serialization."""

from neurodeploy.ir.graph import Graph
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
           "SumPool2d", "AvgPool2d", "Flatten", "Scale", "Delay", "CubaLIF", "IF", "LI", "save_graph", "load_graph",
           "graph_to_bytes", "graph_from_bytes"]
