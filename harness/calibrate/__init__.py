"""``harness calibrate``: how often the gate cries wolf, and how often it catches a real slowdown, on this
runner."""
