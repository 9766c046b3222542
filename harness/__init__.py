"""A performance-regression harness for TensorRT inference, with ONNX Runtime as the CPU fallback.

The pipeline runs one way: suite YAML -> cases -> prepared model -> engine -> measurement -> results ->
baseline gate -> reports. Every stage is a module of its own; heavy libraries (tensorrt, torch, cuda) are
imported only by the stage that needs them, so ``import harness`` works on any machine.
"""

__version__ = "0.1.0"
