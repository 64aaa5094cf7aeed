"""pytest entry point (``-p no:kvmi`` disables it).

Imports only the standard library and pytest at top level: every pytest run in an environment
where pytest-kvmi is installed imports this module.
"""

from __future__ import annotations
