"""MIB modules the lab ships (``TIANDI-LAB-MIB.txt``) and their pysnmp compilations.

``COMPILED_DIR`` is what a pysnmp ``MibBuilder`` adds as a ``DirMibSource`` to resolve the lab's
object names; ``MIB_DIR`` holds the SMIv2 sources (``python -m lab.mibs.compile`` rebuilds).
"""

from pathlib import Path

MIB_DIR = Path(__file__).resolve().parent
COMPILED_DIR = MIB_DIR / "compiled"
