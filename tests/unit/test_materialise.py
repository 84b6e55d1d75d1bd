"""materialise: a task run's working folder from a hand-built TaskExecution alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from signoff.domain.ports_execution import ArtifactRef, TaskExecution
from signoff.errors import ExecutionError
from signoff.executors.materialise import local_folder, materialise


def _folder(root: Path, name: str, files: dict[str, str]) -> Path:
    folder = root / name
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


@pytest.fixture
def upstreams(tmp_path: Path) -> dict[str, Path]:
    """A code snapshot, one single upstream output and a fanned-out one (two grid indexes)."""
    return {
        "code": _folder(tmp_path, "code", {"train.py": "1", "lib/util.py": "", "inputs": ""}),
        "prep": _folder(tmp_path, "prep-out", {"data.csv": "a\n1\n"}),
        "grid0": _folder(tmp_path, "grid0-out", {"m.txt": "0"}),
        "grid1": _folder(tmp_path, "grid1-out", {"m.txt": "1"}),
    }


def _execution(work: Path, up: dict[str, Path], **changes: object) -> TaskExecution:
    fields: dict[str, object] = {
        "task_run_id": "tr1",
        "command": "python train.py",
        "work_dir": work,
        "env": {},
        "code": str(up["code"]),
        "input_refs": (
            ArtifactRef("prep data", "prep_data", str(up["prep"])),
            ArtifactRef("grid", "grid", up["grid0"].as_uri(), 0),
            ArtifactRef("grid", "grid", str(up["grid1"]), 1),
        ),
    }
    fields.update(changes)
    return TaskExecution(**fields)  # type: ignore[arg-type]


def test_a_fresh_command_folder_links_code_and_inputs(
    tmp_path: Path, upstreams: dict[str, Path]
) -> None:
    work = tmp_path / "runs" / "r1" / "tasks" / "train"
    assert materialise(_execution(work, upstreams)) == work
    assert sorted(p.name for p in work.iterdir()) == ["inputs", "lib", "output", "train.py"]
    assert (work / "train.py").is_symlink()
    assert (work / "train.py").readlink() == upstreams["code"] / "train.py"
    assert (work / "lib").readlink() == upstreams["code"] / "lib"
    assert not (work / "output").is_symlink()
    assert list((work / "output").iterdir()) == []
    single = work / "inputs" / "prep_data"
    assert single.is_symlink()
    assert single.readlink() == upstreams["prep"]
    assert (single / "data.csv").read_text() == "a\n1\n"
    fanned = work / "inputs" / "grid"
    assert fanned.is_dir()
    assert not fanned.is_symlink()
    assert sorted(p.name for p in fanned.iterdir()) == ["0", "1"]
    assert (fanned / "0").readlink() == upstreams["grid0"]
    assert (fanned / "1" / "m.txt").read_text() == "1"


def test_without_upstreams_there_is_no_inputs_folder(
    tmp_path: Path, upstreams: dict[str, Path]
) -> None:
    work = tmp_path / "work"
    materialise(_execution(work, upstreams, input_refs=()))
    assert not (work / "inputs").exists()
    assert (work / "output").is_dir()


def test_a_retry_starts_from_an_empty_output(tmp_path: Path, upstreams: dict[str, Path]) -> None:
    work = tmp_path / "work"
    materialise(_execution(work, upstreams))
    (work / "output" / "model.bin").write_text("first attempt")
    (work / "records.jsonl").write_text('{"metric": 1}\n')
    (work / "stdout.log").write_text("first attempt's log\n")
    (work / "inputs" / "prep_data").unlink()
    (work / "inputs" / "prep_data").write_text("stale")

    materialise(_execution(work, upstreams, fresh=False))
    assert list((work / "output").iterdir()) == []
    assert not (work / "records.jsonl").exists()
    assert (work / "stdout.log").read_text() == "first attempt's log\n"  # the log is appended to
    assert (work / "inputs" / "prep_data").readlink() == upstreams["prep"]
    assert (upstreams["prep"] / "data.csv").is_file()  # what was linked is never cleared


def test_a_retry_replaces_a_linked_output_without_touching_its_target(
    tmp_path: Path, upstreams: dict[str, Path]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "output").symlink_to(upstreams["prep"], target_is_directory=True)  # a cache reuse
    materialise(_execution(work, upstreams, fresh=False))
    assert not (work / "output").is_symlink()
    assert list((work / "output").iterdir()) == []
    assert (upstreams["prep"] / "data.csv").is_file()


def test_cnvrg_output_dir_is_another_name_for_output(
    tmp_path: Path, upstreams: dict[str, Path]
) -> None:
    work = tmp_path / "work"
    materialise(_execution(work, upstreams, output_link="out/models"))
    alias = work / "out" / "models"
    assert alias.is_symlink()
    assert alias.readlink() == work / "output"
    (alias / "m.txt").write_text("x")
    assert (work / "output" / "m.txt").read_text() == "x"
    materialise(_execution(work, upstreams, output_link="out/models", fresh=False))
    assert alias.readlink() == work / "output"
    assert list((work / "output").iterdir()) == []


def test_an_in_process_callable_gets_no_links(tmp_path: Path, upstreams: dict[str, Path]) -> None:
    work = tmp_path / "work"
    call = _execution(work, upstreams, call="pkg.mod:fit", command="")
    materialise(call)
    assert not work.exists()  # its folders are made when it writes
    (work / "output").mkdir(parents=True)
    (work / "output" / "old.txt").write_text("old")
    (work / "records.jsonl").write_text("{}\n")
    materialise(_execution(work, upstreams, call="pkg.mod:fit", command="", fresh=False))
    assert sorted(p.name for p in work.iterdir()) == []


def test_a_remote_uri_is_fetched_and_linked(tmp_path: Path, upstreams: dict[str, Path]) -> None:
    fetched: list[str] = []

    def fetch(uri: str) -> Path:
        fetched.append(uri)
        return upstreams["prep"]

    remote = (ArtifactRef("prep data", "prep_data", "s3://bucket/runs/r0/prep/output"),)
    work = tmp_path / "work"
    materialise(_execution(work, upstreams, input_refs=remote), fetch)
    assert fetched == ["s3://bucket/runs/r0/prep/output"]
    assert (work / "inputs" / "prep_data").readlink() == upstreams["prep"]
    with pytest.raises(ExecutionError, match="local folders only"):
        local_folder("s3://bucket/x")
