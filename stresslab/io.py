"""Result files: lossless netCDF written atomically, read back with checks."""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from stresslab._files import refuse_special_file, write_atomically, write_failure_reason
from stresslab._memory import available_memory
from stresslab.errors import StresslabError

__all__ = ["check_table_suffix", "load_results", "save_loan_table", "save_results"]


# ----------------------------------------------------------------------------- files
def save_loan_table(ds: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Write a per-loan Dataset (e.g. expected credit losses) atomically, by the file's suffix.

    Parameters
    ----------
    ds : xarray.Dataset
        Variables along one ``loan`` dimension.
    path : str or os.PathLike
        ``.csv`` or ``.parquet`` (one row per loan), or ``.nc`` (netCDF, with the attrs).

    Raises
    ------
    StresslabError
        For another suffix, or if the file cannot be written (the earlier file, if any, is
        then unchanged).
    """
    path = Path(path)
    suffix = check_table_suffix(path)
    if suffix == ".nc":
        save_results(ds, path)
        return
    writers = {".csv": lambda frame, tmp: frame.to_csv(tmp), ".parquet": lambda frame, tmp: frame.to_parquet(tmp)}
    frame = ds.to_dataframe()
    try:
        write_atomically(path, lambda tmp: writers[suffix](frame, tmp))
    except (OSError, ValueError) as exc:
        raise StresslabError(
            f"could not write {path}: {write_failure_reason(exc, path.parent, ds.nbytes)}; any earlier file there is unchanged"
        ) from exc


def check_table_suffix(path: Path) -> str:
    """The lower-case suffix of a per-loan table file; a one-line error for one it cannot be written as."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".nc"):
        raise StresslabError(f"{path}: unknown table format '{path.suffix}'; use .csv, .parquet or .nc")
    return suffix


def save_results(ds: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Write a Dataset to a netCDF-4 file atomically and losslessly.

    Parameters
    ----------
    ds : xarray.Dataset
        A run or a summary. Attrs must be strings, numbers or numeric arrays (netCDF
        attributes): store structured values as JSON text.
    path : str or os.PathLike
        Target file; replaced if it exists.

    Raises
    ------
    StresslabError
        If the file cannot be written (no space, permission denied, unsupported attribute,
        ...). The earlier file at ``path``, if any, is then unchanged and no temporary
        file is left.

    Notes
    -----
    The data are written to a temporary file in the target's directory, flushed to disk
    and moved onto ``path`` with :func:`os.replace`, so readers see the old file or the
    new one, never a part. Values are stored with their in-memory dtypes, without fill
    values, scaling or lossy packing (variables are zlib-compressed, which is lossless),
    so :func:`load_results` returns bitwise identical values.
    """
    path = Path(path)
    ds = ds.copy(deep=False)
    encoding = {}
    for name, variable in ds.variables.items():
        variable.encoding = {}
        encoding[name] = {"_FillValue": None}
        if name in ds.data_vars and variable.dtype.kind in "biuf" and variable.ndim > 0:
            encoding[name].update(zlib=True, complevel=1)
    try:
        write_atomically(path, lambda tmp: ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding))
    except (OSError, TypeError, ValueError, RuntimeError) as exc:
        raise StresslabError(
            f"could not save results to {path}: {write_failure_reason(exc, path.parent, ds.nbytes)}; "
            "any earlier file there is unchanged"
        ) from exc


def load_results(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read a file written by :func:`save_results` fully into memory and close it.

    Parameters
    ----------
    path : str or os.PathLike
        A netCDF-4 file.

    Returns
    -------
    xarray.Dataset
        The saved Dataset: same values (bitwise), dtypes, coords and attrs.

    Raises
    ------
    StresslabError
        If the file does not exist, is not a regular file or a readable netCDF file, or
        its data (uncompressed) would not fit in memory several times over (a small
        crafted file can expand to gigabytes).
    """
    path = Path(path)
    refuse_special_file(path, "result file")
    if not path.is_file():
        raise StresslabError(f"cannot load results: no such file {path}")
    try:
        with xr.open_dataset(path, engine="netcdf4") as f:
            _check_room(f, path)
            return f.load()
    except (OSError, ValueError, RuntimeError) as exc:
        raise StresslabError(f"cannot load results from {path}: not a readable netCDF file ({exc})") from exc


_LOAD_FACTOR = 4  # summaries and reports of a loaded result need a few copies of its largest variables


def _check_room(ds: xr.Dataset, path: Path) -> None:
    """Refuse a result whose data, uncompressed, would need more memory than is available."""
    need = _LOAD_FACTOR * float(ds.nbytes)
    have = available_memory()
    if need > 0.9 * have:
        raise StresslabError(
            f"cannot load results from {path}: its data take {ds.nbytes / 2**30:,.1f} GiB uncompressed and using "
            f"them needs about {need / 2**30:,.1f} GiB, but {have / 2**30:.1f} GiB are available"
        )
