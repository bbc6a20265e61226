"""The platform as Argo CD layers: conventions, pins, the root, one module per layer, render/write/drift.

Public surface: ``render_layers``, ``write_layers``, ``drift`` (clusters/<env>/layers/), the root
(``render_root``, ``root_path``, ``stale_root``), pins and the deployed artifacts.
"""

from delivery.gitops.artifacts import Modelcar, modelcar_for, modelcar_warnings
from delivery.gitops.pins import PINS_FILE, Pins, load_pins
from delivery.gitops.render import drift, render_layers, write_layers
from delivery.gitops.root import render_root, root_path, stale_root

__all__ = [
    "PINS_FILE",
    "Modelcar",
    "Pins",
    "drift",
    "load_pins",
    "modelcar_for",
    "modelcar_warnings",
    "render_layers",
    "render_root",
    "root_path",
    "stale_root",
    "write_layers",
]
