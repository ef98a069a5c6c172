"""Test configuration: make tests/ helpers (reference quadrature, small books) importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
