"""pycov: line coverage for Python, measured by a Rust tracer.

Use it from the command line: ``pycov run``, ``pycov report``, ``pycov json``
(or ``python -m pycov ...``).
"""

from pycov._pycov import version as _version

__version__ = _version()
