"""Reading a served run's persisted result without Prefect (the CLI's REST path, issue 14)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from efa_rollout.prefect_api import stored_result

FIGURES = {
    "ewa-ostalbkreis": {
        "enrolments": 42,
        "changes": 1,
        "mails_queued": 0,
        "blocked": 0,
        "change_list": [{"AGS": "08136088", "Gemeinde": "Aalen", "von": "a", "nach": "b"}],
    }
}


def _state(path: Path, serializer: dict[str, object]) -> dict[str, object]:
    """A COMPLETED state as GET /api/flow_runs/{id} returns it for a persisted result."""
    return {
        "type": "COMPLETED",
        "data": {
            "storage_key": str(path),
            "expiration": None,
            "serializer": serializer,
            "prefect_version": "3.9.1",
            "storage_block_id": None,
        },
    }


def test_stored_result_reads_what_prefects_serializer_wrote(tmp_path: Path) -> None:
    from prefect.serializers import PickleSerializer

    serializer = PickleSerializer()
    path = tmp_path / "storage" / "3ec42c9b"
    path.parent.mkdir()
    path.write_bytes(serializer.dumps(FIGURES))  # as the runner of `efa up` keeps it
    assert stored_result(_state(path, serializer.model_dump(mode="json"))) == FIGURES


def test_stored_result_reads_a_whole_result_record(tmp_path: Path) -> None:
    from prefect._internal.result_records import ResultRecord, ResultRecordMetadata
    from prefect.serializers import PickleSerializer

    metadata = ResultRecordMetadata(storage_key=str(tmp_path / "r"), serializer=PickleSerializer())
    path = tmp_path / "r"
    path.write_bytes(ResultRecord(metadata=metadata, result=FIGURES).serialize())
    assert stored_result(_state(path, {"type": "pickle", "picklelib": "cloudpickle"})) == FIGURES


def test_no_persisted_result_is_none() -> None:
    assert stored_result({"type": "COMPLETED", "data": None}) is None


def test_reading_a_result_does_not_import_prefect(tmp_path: Path) -> None:
    from prefect.serializers import PickleSerializer

    path = tmp_path / "result"
    path.write_bytes(PickleSerializer().dumps(FIGURES))
    code = (
        "import sys\n"
        "from efa_rollout.prefect_api import stored_result\n"
        f"state = {_state(path, {'type': 'pickle', 'picklelib': 'cloudpickle'})!r}\n"
        f"assert stored_result(state) == {FIGURES!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_result_in_a_storage_block_is_left_to_prefect(tmp_path: Path) -> None:
    state = _state(tmp_path / "r", {"type": "pickle", "picklelib": "cloudpickle"})
    state["data"]["storage_block_id"] = "3f1c0d5e-0000-4000-8000-000000000000"  # type: ignore[index]
    with pytest.raises(LookupError):
        stored_result(state)
