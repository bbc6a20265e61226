"""Forking the platform: ``deliver fork-init`` points every environment at a fork's own values.

Public surface: ``parse_request`` (the checked values: ``ForkRequest``), ``fork_init`` (the whole
change, all files or none: ``ForkResult``) and the ownership rule of the files it rewrites
(``owned``).

Modules:
- ``request``: the command-line values and their checks (git URL, branch, GCP project, DNS name, registry);
- ``values``: the five config keys a fork sets, what follows the project, the old -> new text map;
- ``derive``: roots, layers and OpenTofu inputs computed in memory, checked and validated in a scratch copy;
- ``scan``: the other tracked files holding an old value: rewritten when owned, listed otherwise;
- ``write``: every file written together, or none;
- ``run``: the steps in order; ``cli``: ``deliver fork-init``.
"""

from delivery.fork.request import ForkRequest, parse_request
from delivery.fork.run import ForkResult, fork_init
from delivery.fork.scan import owned

__all__ = ["ForkRequest", "ForkResult", "fork_init", "owned", "parse_request"]
