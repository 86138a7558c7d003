"""What a device needs to run an exported file, without torch: the format table (formats.py), the safe checks
of a file from anyone (check.py), the self-description of ONNX and edge files (onnx_meta.py, edge_meta.py),
image decoding as training saw it (imaging.py), metrics on logits (metrics.py), runners per format
(edge_runners.py) and `kdedge predict` (predict.py)."""
