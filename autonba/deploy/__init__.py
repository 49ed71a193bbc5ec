"""Deployment: the retrained network as QONNX (and, from it, an hls4ml project)."""
