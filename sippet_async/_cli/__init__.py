"""The ``sippet`` command line: argument parsing, progress display and the demo.

Everything here sits on the public package (``sippet_async``) and the fake server; nothing
below imports it.
"""

from sippet_async._cli._main import main

__all__ = ["main"]
