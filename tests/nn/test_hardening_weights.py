"""Issue 15, class 7 (weights): a refused checkpoint is explained in reportgen's words,
never with torch's advice to load it unsafely; a ``--weights PATH`` file named like
torchvision's whose content is not is not labelled as torchvision's."""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from reportgen.errors import ReportgenError
from reportgen.nn.weights import load_state_dict, resolve_weights

PAYLOADS = {
    "OBJ of a blocked global": b"\x80\x02(cos\nsystem\nS'true'\no.",
    "REDUCE of os.system": pickle.dumps(
        type("X", (), {"__reduce__": lambda self: (print, ("ran",))})(), protocol=2
    ),
    "STACK_GLOBAL (protocol 4)": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os"
    b"\x8c\x06system\x93\x8c\x04true\x85R.",
    "persistent id": b"\x80\x02P0\n.",
    "extension code": b"\x80\x02\x82\x01.",
    "frozenset": b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00(K\x01\x91.",
}


def zipped(payload: bytes) -> bytes:
    """A torch.save-style zip whose data.pkl is ``payload``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


@pytest.mark.parametrize("zip_format", [False, True], ids=["pickle", "zip"])
@pytest.mark.parametrize("name", list(PAYLOADS))
def test_a_refused_checkpoint_is_one_line_without_torchs_advice(
    tmp_path: Path, name: str, zip_format: bool
) -> None:
    path = tmp_path / "evil.pth"
    path.write_bytes(zipped(PAYLOADS[name]) if zip_format else PAYLOADS[name])
    with pytest.raises(ReportgenError) as caught:
        load_state_dict(path)
    message = str(caught.value)
    assert "\n" not in message
    for advice in ("weights_only=False", "Re-running", "weights_only` set to", "trusted source"):
        assert advice not in message, message
    assert message.endswith("...)") is False, message  # nothing cut short
    if "refusing" in message:
        assert "nothing in it was run" in message


def test_a_misnamed_file_is_not_labelled_as_torchvisions(tmp_path: Path) -> None:
    state = {"w": torch.zeros(2)}
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert not digest.startswith("f37072fd")
    label = resolve_weights("resnet18", str(path), None, True, 0).label
    assert "not torchvision's" in label and digest[:8] in label


def test_a_plain_file_name_is_its_label(tmp_path: Path) -> None:
    path = tmp_path / "finetuned.pth"
    torch.save({"w": torch.zeros(2)}, path)
    assert resolve_weights("resnet18", str(path), None, True, 0).label == "finetuned.pth"
