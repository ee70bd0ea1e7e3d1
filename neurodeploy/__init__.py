"""neurodeploy: deploy trained spiking neural networks onto neuromorphic hardware.

The core (IR, passes, emulator) needs only numpy; torch, lava, pyNN, brian2 and onnx are imported lazily by the
converters and backends that use them.
"""

__version__ = "0.1.0"
