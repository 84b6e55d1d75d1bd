"""GPU ids (SIGNOFF_GPUS, nvidia-smi) and the local executor's admission of resources."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from signoff.bootstrap.settings import Settings
from signoff.domain.specs import Resources
from signoff.executors.admission import Grant, ResourcePool
from signoff.executors.gpus import Gpus, discover_gpus, parse_gpus


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("2", ("0", "1")),
        ("0", ()),
        ("", ()),
        ("0,2", ("0", "2")),
        (" 1 , 3 ", ("1", "3")),
        ("3,", ("3",)),
        ("GPU-8f1c2d,GPU-aa01", ("GPU-8f1c2d", "GPU-aa01")),
    ],
)
def test_signoff_gpus_is_a_count_or_a_list_of_ids(text: str, ids: tuple[str, ...]) -> None:
    assert parse_gpus(text) == ids


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("two", "must be a count (2) or a comma list"),
        ("-1", "must be a count (2) or a comma list"),
        ("0,0", "names a GPU twice"),
        ("0,a b", "not a GPU id: 'a b'"),
    ],
)
def test_a_bad_signoff_gpus_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_gpus(text)
    with pytest.raises(ValueError, match=re.escape(reason)):
        Settings(gpus=text)


def test_the_setting_wins_over_nvidia_smi() -> None:
    assert discover_gpus("0,2") == Gpus(("0", "2"), "SIGNOFF_GPUS")


def _fake_smi(folder: Path, script: str) -> None:
    smi = folder / "nvidia-smi"
    smi.write_text("#!/bin/sh\n" + script)
    smi.chmod(smi.stat().st_mode | stat.S_IXUSR)


def test_without_the_setting_the_gpus_are_what_nvidia_smi_lists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_smi(
        tmp_path,
        'test "$1" = -L || exit 9\n'
        'echo "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-0000aaaa)"\n'
        'echo "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-1111bbbb)"\n',
    )
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert discover_gpus(None) == Gpus(("0", "1"), "nvidia-smi")


def test_no_gpus_when_nvidia_smi_is_missing_or_fails(tmp_path: Path) -> None:
    assert discover_gpus(None, path=str(tmp_path)) == Gpus()
    _fake_smi(tmp_path, "echo 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert discover_gpus(None, path=str(tmp_path)) == Gpus()


def _pool(gpus: int = 2, memory_mb: int = 8000, slots: int = 4) -> ResourcePool:
    return ResourcePool(slots, Gpus(parse_gpus(str(gpus)), "SIGNOFF_GPUS"), memory_mb)


def test_each_gpu_id_has_one_holder_and_a_third_task_waits() -> None:
    pool = _pool(gpus=2)
    one = Resources(gpu=1)
    first, second = pool.take("a", one), pool.take("b", one)
    assert isinstance(first, Grant)
    assert isinstance(second, Grant)
    assert {first.gpus, second.gpus} == {("0",), ("1",)}
    assert not pool.fits(one)
    assert pool.refusal(one) is None  # it waits; it is not refused
    assert pool.take("c", one) is None  # not free now: the executor tries again later
    pool.release("a")
    assert pool.fits(one)
    third = pool.take("c", one)
    assert isinstance(third, Grant)
    assert third.gpus == first.gpus


def test_a_fraction_of_a_gpu_is_a_whole_one() -> None:
    pool = _pool(gpus=1)
    grant = pool.take("a", Resources(gpu=0.25))
    assert isinstance(grant, Grant)
    assert grant.gpus == ("0",)
    assert not pool.fits(Resources(gpu=0.5))
    assert pool.fits(Resources(gpu=0))


def test_take_is_all_or_nothing_and_never_overcommits_slots_or_memory() -> None:
    pool = _pool(slots=2, memory_mb=8000)
    assert isinstance(pool.take("a", Resources(cpu=2)), Grant)
    assert pool.take("b", Resources(cpu=1)) is None  # fits() said no; take() agrees
    pool.release("a")
    assert isinstance(pool.take("b", Resources(cpu=1, memory_mb=6000)), Grant)
    assert pool.take("c", Resources(cpu=1, memory_mb=3000)) is None  # a slot is free, memory not
    assert pool.holders() == 1


def test_memory_is_a_budget_of_the_machine_total() -> None:
    pool = _pool(memory_mb=8000)
    assert isinstance(pool.take("a", Resources(memory_mb=5000)), Grant)
    assert not pool.fits(Resources(memory_mb=4000))
    assert pool.fits(Resources(memory_mb=3000))
    assert pool.fits(Resources())  # a task naming no memory counts as none
    pool.release("a")
    assert pool.fits(Resources(memory_mb=8000))


def test_cpu_past_the_slots_takes_them_all_and_is_not_refused() -> None:
    pool = _pool(slots=2)
    assert pool.refusal(Resources(cpu=16)) is None
    assert pool.slots_needed(16) == 2
    assert isinstance(pool.take("a", Resources(cpu=16)), Grant)
    assert pool.free_slots() == 0
    assert not pool.fits(Resources(cpu=1))


def test_more_than_the_machine_has_is_refused_with_what_it_asked_and_has() -> None:
    pool = ResourcePool(2, Gpus(), 7962)
    assert pool.refusal(Resources(gpu=2)) == (
        "asks for 2 GPUs; this machine has 0 (SIGNOFF_GPUS or nvidia-smi)"
    )
    assert pool.refusal(Resources(memory_mb=9000)) == (
        "asks for 9000 MB of memory; this machine has 7962 MB"
    )
    both = pool.refusal(Resources(gpu=1, memory_mb=9000))
    assert both == (
        "asks for 1 GPU; this machine has 0 (SIGNOFF_GPUS or nvidia-smi); "
        "asks for 9000 MB of memory; this machine has 7962 MB"
    )
    assert not pool.fits(Resources(gpu=1))
    assert pool.take("a", Resources(gpu=1)) == (
        "asks for 1 GPU; this machine has 0 (SIGNOFF_GPUS or nvidia-smi)"
    )
    assert pool.holders() == 0
