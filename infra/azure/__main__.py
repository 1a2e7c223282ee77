"""`pulumi up` entry point: the Azure stack (see program.py)."""

import sys
from pathlib import Path

import pulumi

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for infra.common

from infra.azure.program import build

for name, value in build().items():
    pulumi.export(name, value)
