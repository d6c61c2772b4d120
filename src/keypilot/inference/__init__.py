"""Inference: the torch and ONNX predictors, export."""
