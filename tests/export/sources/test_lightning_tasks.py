"""``lightning_spec(...)`` for the image and text tasks, through ``servegate export``: the
archive's manifest has the declared task, and the worker's service on the extracted archive
answers what the trained LightningModule computes on the same decoded input. Declarations the
worker could not serve are refused before anything is exported, saying what is missing."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer
from torchvision import transforms

from export.sources.images import sample_images
from handlers.service import ModelService
from tests.support.cli import run_servegate
from tests.support.fake_context import FakeContext
from tests.support.lightning_tasks import (
    IMAGE_CONFIG,
    LABELS,
    MAX_TOKENS,
    SENTIMENTS,
    TrainedTasks,
    train_tasks,
)

# Trains Lightning modules and exports them.
pytestmark = pytest.mark.export

TEXTS = [
    "A good movie",
    "the plot was awful , the movie bad",
    "great fun",
    " ".join(["a good movie with a great plot"] * 3),  # 21 tokens: cut to MAX_TOKENS
    "Zebras unknown words only",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainedTasks:
    return train_tasks(tmp_path_factory.mktemp("lit_tasks"), "byom_lit_tasks")


def export(trained: TrainedTasks, attr: str, ckpt: Path, fmt: str, out: Path) -> Any:
    return run_servegate(
        "export",
        f"{trained.module_file}:{attr}",
        "--ckpt",
        str(ckpt),
        "--formats",
        fmt,
        "--out",
        str(out),
        "--timing-budget",
        "0",
    )


def served(out: Path, archive: str, bodies: list[Any], target: Path) -> list[Any]:
    """The extracted archive's manifest, and its ModelService's answers to one batch."""
    with zipfile.ZipFile(out / f"{archive}.mar") as mar:
        mar.extractall(target)
    service = ModelService.load(target, torch.device("cpu"))
    ctx = FakeContext(str(target))
    answers = [json.loads(a) for a in service.handle([{"body": b} for b in bodies], ctx)]
    assert [ctx.status(i) for i in range(len(bodies))] == [200] * len(bodies), answers
    return answers


def manifest(target: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((target / "servegate.json").read_text())
    return loaded


def by_label(answer: list[dict[str, Any]]) -> dict[str, float]:
    return {a["label"]: a["probability"] for a in answer}


def test_an_image_classifier_serves_what_the_module_computes(
    trained: TrainedTasks, tmp_path: Path
) -> None:
    result = export(trained, "IMAGES", trained.image_ckpt, "torchscript", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    images = sample_images()
    answers = served(
        tmp_path / "out", "image_classifier_torchscript", list(images.values()), tmp_path / "mar"
    )

    written = manifest(tmp_path / "mar")
    assert written["task"] == "image_classification"
    assert written["task_config"] == {**IMAGE_CONFIG, "labels": "labels.json"}
    assert json.loads((tmp_path / "mar" / "labels.json").read_text()) == list(LABELS)
    # The decoding lightning_spec declared, written as torchvision's own transforms.
    decode = transforms.Compose(
        [
            transforms.Resize(IMAGE_CONFIG["resize"]),
            transforms.CenterCrop(IMAGE_CONFIG["crop"]),
            transforms.ToTensor(),
            transforms.Normalize(IMAGE_CONFIG["mean"], IMAGE_CONFIG["std"]),
        ]
    )
    pixels = torch.stack(
        [decode(Image.open(io.BytesIO(raw)).convert("RGB")) for raw in images.values()]
    )
    with torch.no_grad():
        expected = torch.softmax(trained.image(pixels), dim=-1)
    for answer, probs in zip(answers, expected, strict=True):
        assert answer[0]["label"] == LABELS[int(probs.argmax())]
        assert by_label(answer) == pytest.approx(
            dict(zip(LABELS, probs.tolist(), strict=True)), abs=1e-6
        )


def test_a_text_classifier_serves_what_the_module_computes(
    trained: TrainedTasks, tmp_path: Path
) -> None:
    result = export(trained, "TEXTS", trained.text_ckpt, "onnx", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    (answer,) = served(
        tmp_path / "out", "text_classifier_onnx", [{"inputs": TEXTS}], tmp_path / "mar"
    )

    written = manifest(tmp_path / "mar")
    assert written["task"] == "text_classification"
    assert [(i["name"], i["shape"]) for i in written["inputs"]] == [
        ("input_ids", [-1, -1]),
        ("attention_mask", [-1, -1]),
    ]
    tokenizer = Tokenizer.from_file(str(trained.tokenizer))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    encoded = tokenizer.encode_batch(TEXTS)
    ids = torch.tensor([e.ids for e in encoded])
    mask = torch.tensor([e.attention_mask for e in encoded])
    assert ids.shape == (len(TEXTS), MAX_TOKENS)  # padded, and the long text cut
    with torch.no_grad():
        expected = torch.softmax(trained.text(ids, mask), dim=-1)
    for got, probs in zip(answer, expected, strict=True):
        assert got[0]["label"] == SENTIMENTS[int(probs.argmax())]
        assert by_label(got) == pytest.approx(
            dict(zip(SENTIMENTS, probs.tolist(), strict=True)), abs=1e-5
        )


REFUSED = {
    "NO_LABELS": (
        "image",
        "the image_classification worker reads task_config['labels'], which the spec does not set",
    ),
    "WRONG_SIZE": (
        "image",
        "decodes 2 example requests into float32 [2, 3, 224, 224]; the spec declares input "
        "float32 [2, 3, 32, 32]",
    ),
    "NO_TOKENIZER": (
        "text",
        "task_config['tokenizer'] names 'tokenizer.json', which is not among the files the "
        "spec puts in the archive (labels.json;",
    ),
    "FIXED_LENGTH": (
        "text",
        "the token axis of input_ids, attention_mask must be dynamic",
    ),
}


@pytest.mark.parametrize("attr", list(REFUSED))
def test_settings_the_worker_cannot_serve_are_refused_before_export(
    trained: TrainedTasks, tmp_path: Path, attr: str
) -> None:
    kind, reason = REFUSED[attr]
    ckpt = trained.image_ckpt if kind == "image" else trained.text_ckpt
    result = export(trained, attr, ckpt, "torchscript", tmp_path / "out")
    assert result.returncode == 3, result.stderr[-3000:]
    assert reason in result.stderr
    assert not list((tmp_path / "out").glob("*.mar"))
