"""kdedge: distill large image classifiers into small ones that run on edge devices."""

__version__ = "0.1.0"
