"""Writing a figure to a PNG file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from stresslab._files import write_atomically, write_failure_reason
from stresslab.errors import StresslabError


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: float | None = None) -> None:
    """Write a figure to a PNG file atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure (e.g. returned by a plot of :mod:`stresslab.plots`).
    path : str or os.PathLike
        Target file, ending in ``.png``; replaced if it exists.
    dpi : float, optional
        Resolution; default the figure's own ``dpi``.

    Raises
    ------
    StresslabError
        If the suffix is not ``.png``, the directory does not exist, or the figure cannot be
        drawn or written (permission denied, no space, ...): the message says why. Any
        earlier file at ``path`` is then unchanged and no temporary file is left.

    Notes
    -----
    The PNG is written to a temporary file in the target's directory, flushed to disk and
    moved onto ``path`` with :func:`os.replace` (:func:`stresslab._files.write_atomically`):
    readers see the old file or the new one, never a part.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise StresslabError(f"save_figure writes PNG files: the path must end in .png; got {str(path)!r} (for other formats use fig.savefig)")
    if not path.parent.is_dir():
        raise StresslabError(f"could not save the figure to {path}: the directory {path.parent} does not exist")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi if dpi is not None else "figure")

    try:
        write_atomically(path, write)
    except (OSError, ValueError, RuntimeError, TypeError) as exc:
        nbytes = int(np.prod(fig.get_size_inches() * (dpi or fig.dpi))) * 4
        reason = " ".join(write_failure_reason(exc, path.parent, nbytes).split())  # one line (mathtext errors span several)
        raise StresslabError(f"could not save the figure to {path}: {reason}; any earlier file there is unchanged") from exc
