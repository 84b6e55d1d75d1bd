"""Data fingerprints over real small files: hashes, rows, schemas, and unreadable files."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from signoff.errors import NotFoundError
from signoff.tracking.fingerprints import Table, fingerprint_path


def _table(fp_tables: list[Table], path: str) -> Table:
    return next(t for t in fp_tables if t["path"] == path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "raw").mkdir(parents=True)
    np.savez_compressed(
        root / "train.npz",
        features=np.zeros((40, 3), dtype=np.float32),
        labels=np.ones(40, dtype=np.int64),
    )
    np.save(root / "raw" / "weights.npy", np.arange(6, dtype=np.float64).reshape(2, 3))
    (root / "raw" / "users.csv").write_text(
        'id,name,score,active\n1,"Smith, Ann",0.5,true\n2,"two\nlines",1,false\n3,Bo,,true\n'
    )
    (root / "raw" / "events.tsv").write_text("user\titem\n1\t7\n2\t8")  # no final newline
    (root / "items.json").write_text(json.dumps([{"item": 1, "price": 2.5}, {"item": 2}]))
    (root / "config.json").write_text(json.dumps({"seed": 7}))
    (root / "log.jsonl").write_text('{"step": 1, "note": "a\\"b"}\n{"step": 2, "note": ""}\n')
    (root / "README.txt").write_text("not a table\n")
    return root


def test_folder_fingerprint_hashes_every_file_and_reads_tables(data_dir: Path) -> None:
    fp = fingerprint_path(data_dir)
    files = sorted(p for p in data_dir.rglob("*") if p.is_file())
    assert fp["files"] == len(files) == 8
    assert fp["bytes"] == sum(p.stat().st_size for p in files)
    by_path = {e["path"]: e for e in fp["entries"]}
    csv_sha = hashlib.sha256((data_dir / "raw" / "users.csv").read_bytes()).hexdigest()
    assert by_path["raw/users.csv"]["sha256"] == csv_sha
    assert fp["unreadable"] == []

    npz = _table(fp["tables"], "train.npz")
    assert npz["rows"] == 40
    assert npz["columns"] == [
        {"name": "features", "dtype": "float32", "shape": [40, 3]},
        {"name": "labels", "dtype": "int64", "shape": [40]},
    ]
    assert _table(fp["tables"], "raw/weights.npy")["rows"] == 2

    users = _table(fp["tables"], "raw/users.csv")
    assert users["rows"] == 3  # a quoted newline does not start a record
    assert [(c["name"], c["dtype"]) for c in users["columns"]] == [
        ("id", "int"),
        ("name", "str"),
        ("score", "float"),
        ("active", "bool"),
    ]
    events = _table(fp["tables"], "raw/events.tsv")
    assert (events["rows"], [c["name"] for c in events["columns"]]) == (2, ["user", "item"])

    items = _table(fp["tables"], "items.json")
    assert (items["rows"], items["top_level"]) == (2, "list")
    assert items["columns"] == [
        {"name": "item", "dtype": "int"},
        {"name": "price", "dtype": "float"},
    ]
    config = _table(fp["tables"], "config.json")
    assert (config["rows"], config["top_level"]) == (None, "object")
    log = _table(fp["tables"], "log.jsonl")
    assert (log["rows"], log["top_level"]) == (2, "object")

    assert fp["rows"] == 40 + 2 + 3 + 2 + 2 + 2
    assert "README.txt" not in {t["path"] for t in fp["tables"]}


def test_digest_is_over_relative_paths_and_contents(data_dir: Path, tmp_path: Path) -> None:
    fp = fingerprint_path(data_dir)
    expected = hashlib.sha256()
    for entry in sorted(fp["entries"], key=lambda e: e["path"]):
        expected.update(f"{entry['path']}\0{entry['sha256']}\0".encode())
    assert fp["digest"] == expected.hexdigest()

    moved = tmp_path / "elsewhere"
    data_dir.rename(moved)
    assert fingerprint_path(moved)["digest"] == fp["digest"]  # the location does not count
    (moved / "README.txt").rename(moved / "raw" / "README.txt")
    assert fingerprint_path(moved)["digest"] != fp["digest"]  # a file's path does


def test_a_single_file_is_fingerprinted_by_its_name(data_dir: Path) -> None:
    fp = fingerprint_path(data_dir / "train.npz")
    assert fp["files"] == 1
    assert [t["path"] for t in fp["tables"]] == ["train.npz"]
    assert fp["rows"] == 40


def test_corrupt_files_are_recorded_as_unreadable(tmp_path: Path) -> None:
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    with zipfile.ZipFile(tmp_path / "fake.npz", "w") as archive:
        archive.writestr("x.npy", b"\x93NUMPY garbage")
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00bad")
    fp = fingerprint_path(tmp_path)
    assert fp["files"] == 4
    assert sorted(u["path"] for u in fp["unreadable"]) == [
        "bad.json",
        "binary.csv",
        "broken.npz",
        "fake.npz",
    ]
    assert all(u["reason"] for u in fp["unreadable"])
    assert fp["tables"] == []
    assert fp["rows"] is None


def test_object_arrays_are_described_without_unpickling(tmp_path: Path) -> None:
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    fp = fingerprint_path(tmp_path)
    assert fp["tables"][0]["columns"] == [{"name": "objects", "dtype": "object", "shape": [2]}]


def test_empty_and_header_only_tables(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "header.csv").write_text("a,b")
    (tmp_path / "empty.jsonl").write_text("")
    fp = fingerprint_path(tmp_path)
    assert _table(fp["tables"], "empty.csv")["rows"] == 0
    header = _table(fp["tables"], "header.csv")
    assert (header["rows"], [c["dtype"] for c in header["columns"]]) == (0, ["unknown", "unknown"])
    assert _table(fp["tables"], "empty.jsonl")["rows"] == 0


def test_symlinked_folders_are_followed_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "a.csv").write_text("x\n1\n")
    (real / "loop").symlink_to(real, target_is_directory=True)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "upstream").symlink_to(real, target_is_directory=True)
    fp = fingerprint_path(inputs)
    assert [e["path"] for e in fp["entries"]] == ["upstream/a.csv"]
    assert fp["rows"] == 1


def test_parquet_is_only_hashed_without_pyarrow(tmp_path: Path) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pyarrow is installed: Parquet files are read")
    (tmp_path / "t.parquet").write_bytes(b"PAR1 not really PAR1")
    fp = fingerprint_path(tmp_path)
    assert (fp["files"], fp["tables"], fp["unreadable"]) == (1, [], [])


def test_a_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no data"):
        fingerprint_path(tmp_path / "nowhere")


def test_large_csv_rows_are_counted_by_streaming(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with path.open("w") as f:
        f.write("a,b,c\n")
        line = "1,2.5,x\n" * 1000
        for _ in range(300):  # 300k rows, ~2.4 MB: several hash chunks
            f.write(line)
    fp = fingerprint_path(path)
    assert fp["rows"] == 300_000
    assert os.path.getsize(path) == fp["bytes"]


def test_the_digest_is_the_one_the_engine_records_for_a_task_output(
    data_dir: Path, tmp_path: Path
) -> None:
    # the engine ingests a task's output into artifact records; their folder fingerprint is
    # what cache keys, reproductions and the review report compare: it must be this digest
    from signoff.artifacts import LocalArtifactStore
    from signoff.domain.records import RunRecord, TaskRunRecord
    from signoff.domain.specs import TaskKind
    from signoff.domain.states import RunState, TaskRunState
    from signoff.engine.artifacts import folder_fingerprint
    from signoff.engine.ingest import read_outputs
    from signoff.report.datasets import describe_output

    work = tmp_path / "task"
    (work / "output").mkdir(parents=True)
    for file in data_dir.rglob("*"):
        if file.is_file():
            target = work / "output" / file.relative_to(data_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.read_bytes())
    run = RunRecord("r1", "f", "h", RunState.RUNNING, 0, {}, "me", str(tmp_path), 1.0, 1.0)
    tr = TaskRunRecord(
        "t1", "r1", "data", -1, TaskKind.DATA, {}, TaskRunState.RUNNING, 0, 1, str(work), 1.0
    )
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    outputs = read_outputs(run, tr, now=2.0, new_id=lambda: "x", artifacts=artifacts)
    digest = fingerprint_path(work / "output")["digest"]
    assert folder_fingerprint(outputs.artifacts) == digest
    described = describe_output(work / "output", outputs.artifacts)
    assert described["digest"] == digest
    assert described["rows"] == fingerprint_path(work / "output")["rows"]
