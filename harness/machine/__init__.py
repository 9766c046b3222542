"""Facts of the machine a run measures on: CUDA device memory and events, NVML telemetry, the environment
fingerprint that keys baselines. Imports only :mod:`harness.core`."""
