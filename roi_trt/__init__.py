"""roi-trt: deploy anonymizing learned image compression (ROI-loss factorized-prior codecs)."""

__version__ = "0.1.0"
