"""The demo checkpoint shipped in the package (see README: how it was trained, what it achieves)."""

import os

DEMO_CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "demo-128-2.pt")
