"""File discovery: which files under the root are candidates for indexing.

``discover`` walks the tree honouring ``.gitignore``/``.git/info/exclude``/
``.codesiftignore`` and yields :class:`~codesift.models.FileEntry` for regular files and
:class:`~codesift.models.SkippedFile` (with the reason) for everything refused. It only
uses ``scandir``/``stat``: no candidate file is opened. ``pathspec`` is imported lazily,
only when an ignore file is found.
"""

from __future__ import annotations

from .walk import discover, human_size

__all__ = ["discover", "human_size"]
