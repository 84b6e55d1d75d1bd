"""Artifact store on S3 against a bare s3fs copy of the same files, measured in one run.

    .venv/bin/python benchmarks/artifacts.py [--files 100] [--file-kib 256] [--big 2]
                                             [--big-mib 16] [--repeat 5] [--json]

A moto S3 server is started on 127.0.0.1 for the run, in a process of its own (as a real
server would be: it does not share this process's interpreter lock). One folder (default
100 files of 256 KiB and 2 of 16 MiB, random bytes) is
(a) uploaded by ``FsspecArtifactStore.put_tree`` (hash every file, send those the store
    lacks, then the manifest) against one s3fs ``put`` of the same files;
(b) downloaded by ``fetch_tree`` (read the manifest, fetch to temporary names, check every
    digest, rename) against one s3fs ``get`` of the same objects.
Each side starts cold (a new prefix, a new store object: no digest known in-process) and
the two alternate; the figure is the median of ``--repeat`` rounds. Target: ratio <= 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from s3_server import S3Endpoint, s3_server_process
from signoff.artifacts.remote import FsspecArtifactStore

TARGET = 1.2


def make_folder(root: Path, files: int, file_kib: int, big: int, big_mib: int) -> list[Path]:
    paths = []
    for i in range(files):
        path = root / f"part-{i // 25}" / f"file-{i:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(file_kib * 1024))
        paths.append(path)
    for i in range(big):
        path = root / "models" / f"weights-{i}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(big_mib * 1024 * 1024))
        paths.append(path)
    return paths


def timed(work: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    work()
    return time.perf_counter() - t0


def one_round(
    s3: S3Endpoint, bare: Any, source: Path, paths: list[Path], base: Path, round_: int
) -> dict[str, float]:
    """Upload then download the folder both ways, cold (a new prefix, a new store object)."""
    options = s3.storage_options()
    prefix = f"{s3.bucket}/r{round_}-{uuid.uuid4().hex[:6]}"
    rels = [p.relative_to(source).as_posix() for p in paths]
    remote = [f"{prefix}/bare/{rel}" for rel in rels]
    store = FsspecArtifactStore(f"s3://{prefix}/store", options)
    digest: list[str] = []
    uploads: list[tuple[str, Callable[[], object]]] = [
        ("put", lambda: digest.append(store.put_tree(source))),
        ("s3fs put", lambda: bare.put([str(p) for p in paths], remote)),
    ]
    reader = FsspecArtifactStore(f"s3://{prefix}/store", options)  # no digest known
    got, bare_got = base / f"got-{round_}", base / f"bare-{round_}"
    local = [bare_got / rel for rel in rels]

    def bare_get() -> None:
        for folder in {p.parent for p in local}:
            folder.mkdir(parents=True, exist_ok=True)
        bare.get(remote, [str(p) for p in local])

    downloads: list[tuple[str, Callable[[], object]]] = [
        ("get", lambda: reader.fetch_tree(digest[0], got)),
        ("s3fs get", bare_get),
    ]
    times = {}
    for pair in (uploads, downloads):  # the two sides alternate who goes first
        for name, work in pair if round_ % 2 == 0 else pair[::-1]:
            times[name] = timed(work)
    shutil.rmtree(got)
    shutil.rmtree(bare_got)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--file-kib", type=int, default=256)
    parser.add_argument("--big", type=int, default=2)
    parser.add_argument("--big-mib", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--dir", default=None, help="where the folders go (default: temp)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-") as tmp,
        s3_server_process() as s3,
    ):
        base = Path(tmp)
        source = base / "source"
        paths = make_folder(source, args.files, args.file_kib, args.big, args.big_mib)
        total_mib = sum(p.stat().st_size for p in paths) / 2**20
        options: dict[str, Any] = s3.storage_options()
        bare = FsspecArtifactStore(f"s3://{s3.bucket}/warm", options).fs  # the same s3fs
        times: dict[str, list[float]] = {k: [] for k in ("put", "s3fs put", "get", "s3fs get")}
        for round_ in range(args.repeat):
            for name, seconds in one_round(s3, bare, source, paths, base, round_).items():
                times[name].append(seconds)
        results = []
        for what, ours, theirs in (("upload", "put", "s3fs put"), ("download", "get", "s3fs get")):
            mine, baseline = statistics.median(times[ours]), statistics.median(times[theirs])
            ratio = mine / baseline
            results.append(
                {
                    "what": what,
                    "files": len(paths),
                    "mib": round(total_mib, 1),
                    "store_s": round(mine, 3),
                    "s3fs_s": round(baseline, 3),
                    "ratio": round(ratio, 2),
                    "target": f"ratio <= {TARGET}",
                    "ok": ratio <= TARGET,
                    "rounds": args.repeat,
                }
            )
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'':<9} {'files':>5} {'MiB':>6} {'store s':>8} {'s3fs s':>8} {'ratio':>6}")
    for row in results:
        print(
            f"{row['what']:<9} {row['files']:>5} {row['mib']:>6} {row['store_s']:>8.3f} "
            f"{row['s3fs_s']:>8.3f} {row['ratio']:>6.2f}  [{'ok' if row['ok'] else 'MISS'}]"
            f"  (median of {row['rounds']}, target <= {TARGET})"
        )


if __name__ == "__main__":
    main()
