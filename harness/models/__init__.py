"""Model preparation: find or export the ONNX file a case runs, read its graph, make its batch dimension
dynamic, and plan and generate its inputs."""
