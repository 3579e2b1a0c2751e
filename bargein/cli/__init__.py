"""The command-line application: ``bargein demo | talk | sim | diagram``.

A client of the library like any other program: it builds a ``Session`` from the library's
parts and adds what only a person at a terminal needs.

- ``app``: argument parsing and the four commands (``main`` is the console script);
- ``runner``: one conversation from options (devices or WAV files, until quiet);
- ``console``: log configuration and the live view of a conversation;
- ``demo``: the offline demo;
- ``timeline_svg``: the demo's picture of a conversation.
"""

from bargein.cli.app import main

__all__ = ["main"]
