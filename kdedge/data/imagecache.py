"""Decode image files once into a uint8 cache on disk, memory-mapped for training (data larger than RAM).

One implementation for every file-based data source (folder, csv, APTOS). A cache file is an .npy of
(N, C, S, S) uint8, rows in the order the caller gives (train, then val, then test: each split is then a
contiguous slice, a view of the map, never a copy). Its name holds a key over everything the pixels
depend on: the pre-processing (version, size, channels, resize mode) and each file's path, byte size and
mtime; any change builds a new file (and prunes the old one of the same source and size). Files are
decoded in parallel processes with a progress bar and written to a temp file renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdedge.errors import InputError
from kdedge.runtime.imaging import Decode, decode_file, image_kind

PARALLEL_FROM = 64  # below this many images a process pool costs more than it saves
DEFAULT_CACHE = Path.home() / ".cache" / "kdedge"
_WARNED: set[str] = set()  # cache folders already reported as unwritable (said once per process)


def _pool_map(fn, jobs: list, chunksize: int = 16):
    """map over a process pool when there are enough jobs, in this process otherwise; yields in order."""
    workers = min(os.cpu_count() or 1, 8) if len(jobs) >= PARALLEL_FROM else 1
    if workers == 1:
        yield from map(fn, jobs)
        return
    with ProcessPoolExecutor(workers) as pool:
        try:
            yield from pool.map(fn, jobs, chunksize=chunksize)
        finally:
            pool.shutdown(cancel_futures=True)  # a bad file stops the run now, not after decoding the rest


def infer_channels(paths: list[Path], memo: Path | None = None) -> int:
    """1 when every image is grayscale, 3 when every image is colour; mixed modes are an InputError.
    `memo`: a small JSON file keyed like the cache, so a reused set skips the header scan."""
    if memo is not None and memo.is_file():
        return int(json.loads(memo.read_text())["channels"])
    kinds = list(_pool_map(image_kind, paths, chunksize=64))
    gray, colour = kinds.count("gray"), kinds.count("colour")
    if gray and colour:
        example = paths[kinds.index("gray" if gray < colour else "colour")]
        raise InputError(
            f"mixed image modes: {gray} grayscale and {colour} colour images (e.g. {example}); "
            "set data.in_channels: 1 or 3 to convert them all"
        )
    if memo is not None:
        try:
            memo.write_text(json.dumps({"channels": 1 if gray else 3}))
        except OSError:
            pass  # a memo only: a full or read-only disk just means scanning again next time
    return 1 if gray else 3


def channels_memo(folder: Path | None, tag: str, source: Path, paths: list[Path]) -> Path | None:
    """Where infer_channels remembers its answer for this exact file list (name, size, mtime)."""
    if folder is None:
        return None
    return cache_path(folder, tag, source, paths, Decode(0, 0, "modes")).with_suffix(".modes.json")


@dataclass(frozen=True)
class Cached:
    """images: (N_kept, C, S, S) uint8 memory map; kept: (N_kept,) indices into the caller's paths;
    bad: [(path, reason)] of the files skipped (only with skip_bad)."""

    images: np.ndarray
    kept: np.ndarray
    bad: list[tuple[str, str]]
    file: Path | None  # None: decoded into memory (no writable cache folder, or a full disk)


def cache_key(paths: list[Path], spec: Decode) -> str:
    """sha256 of the pre-processing and each file's path, byte size and mtime (an edited image changes it)."""
    digest = hashlib.sha256(spec.describe().encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"|{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def cache_path(cache_dir: Path, tag: str, source: Path, paths: list[Path], spec: Decode) -> Path:
    """<cache>/<tag>-<source hash>-<size>px-<key>.npy; the source hash lets stale files be pruned."""
    where = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:8]
    return cache_dir / f"{tag}-{where}-{spec.size}px-{cache_key(paths, spec)}.npy"


def usable_cache_dir(wanted: Path, fallback: Path | None, what: str) -> Path | None:
    """`wanted` when a file can be created there, else `fallback` (the run directory), else None (decode in
    memory for this run only); a fallback is said once per folder."""
    from kdedge.files.fsguard import NotWritable, check_writable
    from kdedge.ui.console import warn

    def ready(folder: Path, name: str) -> Path:
        check_writable(folder, name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    try:
        return ready(wanted, what)
    except (NotWritable, OSError) as err:
        problem = str(err).removesuffix("; choose a writable folder")
    if fallback is not None:
        try:
            found = ready(fallback, "run directory")
            _warn_once(wanted, f"{problem}; caching in {fallback} instead", warn)
            return found
        except (NotWritable, OSError):
            pass
    _warn_once(
        wanted,
        f"{problem}; decoding in memory for this run only (data.cache_dir or $KDEDGE_CACHE: "
        "a writable folder keeps the result)",
        warn,
    )
    return None


def _warn_once(folder: Path, text: str, warn) -> None:
    if str(folder) not in _WARNED:
        _WARNED.add(str(folder))
        warn(text)


def _open_cached(target: Path, count: int, spec: Decode) -> Cached | None:
    """The finished cache file and its sidecar, or None when absent / damaged / of another shape."""
    try:
        side = json.loads(target.with_suffix(".json").read_text())
        images = np.load(target, mmap_mode="c", allow_pickle=False)  # "c": writable for torch, file untouched
        kept = np.asarray(side["kept"], dtype=np.int64)
        if (
            images.dtype == np.uint8
            and images.shape == (len(kept), spec.channels, spec.size, spec.size)
            and side["count"] == count
        ):
            return Cached(images, kept, [tuple(b) for b in side["bad"]], target)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # unreadable cache (disk trouble, foreign or truncated file): rebuild it
    return None


def decode_all(paths: list[Path], spec: Decode, out: np.ndarray, label: str, quiet: bool = False) -> list[str]:
    """Decode every file into out[i] (a writable memory map), in parallel; returns the failures' reasons
    (their rows stay zero)."""
    from kdedge.ui.console import console, make_progress

    console.print(
        f"{label}: decoding {len(paths)} images to {spec.channels}x{spec.size}x{spec.size} (once; cached on disk)",
        highlight=False,
    )
    failures: list[str] = []
    with make_progress(quiet=quiet or len(paths) < PARALLEL_FROM) as progress:
        task = progress.add_task(f"{label}: decode + resize", total=len(paths))
        for index, result in enumerate(_pool_map(decode_file, [(p, spec) for p in paths], chunksize=8)):
            if isinstance(result, str):
                failures.append(result)
                out[index] = 0
            else:
                out[index] = result
            progress.advance(task)
    return failures


def _bad_message(failures: list[str], total: int) -> str:
    more = f" (and {len(failures) - 1} more of {total} images)" if len(failures) > 1 else ""
    return f"{failures[0]}{more}; fix or remove it, or pass --skip-bad-images (data.skip_bad_images: true)"


def _new_map(folder: Path, name: str, shape: tuple[int, ...]) -> tuple[Path, np.ndarray]:
    """A temp .npy memory map in `folder`, its blocks reserved first: a full disk is an OSError here, not
    a SIGBUS in the middle of decoding (writes to a sparse map that cannot grow kill the process)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        with open(tmp, "r+b") as handle:
            os.posix_fallocate(handle.fileno(), 0, os.path.getsize(tmp))
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # nothing half-written stays in the cache folder
        raise
    return Path(tmp), out


def _compact(source: np.ndarray, kept: np.ndarray, folder: Path, name: str) -> Path:
    """A new map holding only the `kept` rows of `source`, copied in chunks (bounded memory)."""
    tmp, out = _new_map(folder, f"{name}.kept", (len(kept), *source.shape[1:]))
    for start in range(0, len(kept), 256):
        out[start : start + 256] = source[kept[start : start + 256]]
    out.flush()
    del out
    return tmp


def load_cached(
    paths: list[Path],
    spec: Decode,
    folder: Path | None,
    *,
    tag: str,
    source: Path,
    skip_bad: bool = False,
    quiet: bool = False,
) -> Cached:
    """The cached (N, C, S, S) uint8 memory map of `paths` (in this order), built first when its key
    changed; folder None (no writable cache folder) or a full disk: decoded into memory instead. A bad file
    is an InputError naming it and counting the others, unless skip_bad (then its row is left out and it is
    listed in Cached.bad)."""
    from kdedge.files.fsguard import DiskFull
    from kdedge.ui.console import warn

    if folder is None:
        return _build(paths, spec, None, None, tag, skip_bad, quiet)
    target = cache_path(folder, tag, source, paths, spec)
    if (found := _open_cached(target, len(paths), spec)) is not None:
        if found.bad and not skip_bad:
            raise InputError(_bad_message([reason for _, reason in found.bad], len(paths)))
        return found
    try:
        return _build(paths, spec, folder, target, tag, skip_bad, quiet)
    except DiskFull as err:  # only a cache: this run goes on with the images in memory
        _warn_once(folder, f"{err}; the decoded images were not cached", warn)
        return _build(paths, spec, None, None, tag, skip_bad, quiet)


def _build(
    paths: list[Path], spec: Decode, folder: Path | None, target: Path | None, tag: str, skip_bad: bool, quiet: bool
) -> Cached:
    """Decode into a temp map in `folder` renamed to `target` (or into memory when folder is None)."""
    from kdedge.files.fsguard import disk_full_as_error

    shape = (len(paths), spec.channels, spec.size, spec.size)
    if folder is None or target is None:
        out = np.zeros(shape, dtype=np.uint8)
        failures = decode_all(paths, spec, out, tag, quiet)
        kept, bad = _kept(paths, failures, skip_bad)
        return Cached(out[kept] if len(kept) < len(paths) else out, kept, bad, None)
    tmp = final = None
    try:
        with disk_full_as_error(target, int(np.prod(shape)) + 4096):
            tmp, out = _new_map(folder, target.name, shape)
            final = tmp
            failures = decode_all(paths, spec, out, tag, quiet)
            out.flush()
            kept, bad = _kept(paths, failures, skip_bad)
            if failures:
                final = _compact(out, kept, folder, target.name)
            del out
            for stale in folder.glob(target.name.rsplit("-", 1)[0] + "-*.*"):
                stale.unlink(missing_ok=True)  # same source and size, older files or settings: never read
            side = {"count": len(paths), "kept": kept.tolist(), "bad": bad, "spec": spec.describe()}
            target.with_suffix(".json").write_text(json.dumps(side))
            os.chmod(final, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
            os.replace(final, target)
    finally:
        for leftover in (tmp, final):
            if leftover is not None:
                leftover.unlink(missing_ok=True)
    opened = _open_cached(target, len(paths), spec)
    if opened is None:  # pragma: no cover - written a moment ago
        raise InputError(f"{target}: image cache could not be read back")
    return opened


def _kept(paths: list[Path], failures: list[str], skip_bad: bool) -> tuple[np.ndarray, list]:
    """Indices of the readable files and [(path, reason)] of the others; failures without skip_bad: error."""
    if failures and not skip_bad:
        raise InputError(_bad_message(failures, len(paths)))
    bad = [(reason.split(": not a readable image")[0], reason) for reason in failures]
    unreadable = {path for path, _ in bad}
    return np.asarray([i for i, p in enumerate(paths) if str(p) not in unreadable], dtype=np.int64), bad
