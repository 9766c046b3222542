"""The TensorRT backend: engine builds through the TensorRT or TensorRT-RTX Python API, the CUDA runner that
times an engine the way trtexec does, the version differences between TensorRT releases, and the type check of this
code against the TensorRT stubs."""
