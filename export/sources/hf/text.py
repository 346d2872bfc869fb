"""Text folders: sentence-transformers embedders and ``*ForSequenceClassification`` models.

Texts are tokenised in the worker with the folder's ``tokenizer.json``, truncated to the
folder's own window (sentence-transformers' ``max_seq_length``, else the tokenizer's
``model_max_length``, never past the model's position embeddings). The export is checked
against the library's own answer on real sentences: ``SentenceTransformer.encode`` for an
embedder, transformers' ``text-classification`` pipeline (probabilities) for a classifier.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
from tokenizers import Tokenizer

from export.errors import SpecError
from export.library_reference import LibraryCase, LibraryReference
from export.sentences import SENTENCES
from export.sources.hf.folder import HFFolder
from export.sources.hf.modules import PooledEmbedder, Pooling, TextLogits
from export.sources.hf.st_config import sentence_pipeline
from export.sources.options import SourceOptions, archive_name
from export.spec import DimRange, ModelSpec, TensorSpec, Tolerance, TransformerInfo
from export.weights import seeded

UNSET_MAX_LENGTH = 1_000_000  # transformers' "no limit" is 1e30


def embedding_spec(folder: HFFolder, options: SourceOptions) -> ModelSpec:
    pooling, normalize = sentence_pipeline(folder)
    dim = int(folder.config["hidden_size"])

    def build(weights: Path | None) -> torch.nn.Module:
        return PooledEmbedder(_load(folder, "AutoModel"), pooling, normalize).eval()

    return _text_spec(
        folder,
        options,
        task="text_embedding",
        build=build,
        output=TensorSpec(name="sentence_embedding", shape=("batch", dim)),
        reference=lambda: _encode_reference(folder, pooling),
        task_config={},
    )


def classification_spec(folder: HFFolder, options: SourceOptions) -> ModelSpec:
    labels = folder.labels()
    problem = folder.config.get("problem_type")
    if len(labels) < 2 or problem not in (None, "single_label_classification"):
        raise SpecError(
            f"hf:{folder.path}: servegate answers softmax probabilities over 2+ labels; this "
            f"model has {len(labels)} label(s) and problem_type {problem!r} (sigmoid scores)"
        )

    def build(weights: Path | None) -> torch.nn.Module:
        return TextLogits(_load(folder, "AutoModelForSequenceClassification")).eval()

    def labels_file(scratch: Path) -> dict[str, Path]:
        path = scratch / "labels.json"
        path.write_text(json.dumps(labels))
        return {"labels.json": path}

    return _text_spec(
        folder,
        options,
        task="text_classification",
        build=build,
        output=TensorSpec(name="logits", shape=("batch", len(labels))),
        reference=lambda: _pipeline_reference(folder, labels),
        task_config={"labels": "labels.json", "top_k": min(5, len(labels))},
        extra=labels_file,
    )


def _text_spec(
    folder: HFFolder,
    options: SourceOptions,
    *,
    task: Any,
    build: Any,
    output: TensorSpec,
    reference: Any,
    task_config: dict[str, Any],
    extra: Any = None,
) -> ModelSpec:
    tokenizer_file = folder.tokenizer_file()
    max_length = window(folder)
    pad_token, pad_id = _pad(folder, tokenizer_file)
    vocab = int(folder.config["vocab_size"])
    config = folder.config

    def extra_files(scratch: Path) -> dict[str, Path]:
        return {"tokenizer.json": tokenizer_file, **(extra(scratch) if extra else {})}

    transformer = None
    if config.get("model_type") == "bert":
        transformer = TransformerInfo(
            num_heads=int(config["num_attention_heads"]), hidden_size=int(config["hidden_size"])
        )
    return ModelSpec(
        name=archive_name(options, folder.path.resolve().name),
        task=task,
        build=build,
        example_inputs=lambda sizes: token_inputs(sizes, vocab, pad_id),
        inputs=(
            TensorSpec(name="input_ids", dtype="int64", shape=("batch", "sequence")),
            TensorSpec(name="attention_mask", dtype="int64", shape=("batch", "sequence")),
        ),
        outputs=(output,),
        dims={
            "batch": DimRange(min=1, max=1024, export=2, check=(1, 3, 5)),
            "sequence": DimRange(
                min=1,
                max=max_length,
                export=min(16, max_length),
                check=tuple(s for s in (7, 33, 128) if s <= max_length) or (max_length,),
            ),
        },
        tolerance=Tolerance(atol=1e-4, rtol=1e-3),
        task_config={
            "tokenizer": "tokenizer.json",
            "max_length": max_length,
            "pad_id": pad_id,
            "pad_token": pad_token,
            **task_config,
        },
        extra_files=extra_files,
        transformer=transformer,
        timing_sizes={"sequence": min(128, max_length)},
        library_reference=reference,
    )


def window(folder: HFFolder) -> int:
    """The token window: what sentence-transformers or the tokenizer truncates to."""
    positions = int(folder.config.get("max_position_embeddings", 512))
    for source, key in (
        ("sentence_bert_config.json", "max_seq_length"),
        ("tokenizer_config.json", "model_max_length"),
    ):
        value = folder.json(source).get(key)
        if isinstance(value, (int, float)) and 1 < value < UNSET_MAX_LENGTH:
            return min(int(value), positions)
    return positions


def _pad(folder: HFFolder, tokenizer_file: Path) -> tuple[str, int]:
    token = folder.json("tokenizer_config.json").get("pad_token")
    if isinstance(token, dict):  # an AddedToken written out
        token = token.get("content")
    pad_id = Tokenizer.from_file(str(tokenizer_file)).token_to_id(str(token)) if token else None
    if pad_id is None:
        raise SpecError(
            f"hf:{folder.path}: the tokenizer has no pad token; the worker pads batches of texts"
        )
    return str(token), int(pad_id)


def token_inputs(sizes: Mapping[str, int], vocab: int, pad_id: int) -> tuple[torch.Tensor, ...]:
    """Random token ids with rows of different real lengths, padded as in a real batch."""
    batch, seq = sizes["batch"], sizes["sequence"]
    gen = seeded(batch * 1000 + seq)
    ids = torch.randint(min(1000, vocab // 2), vocab, (batch, seq), generator=gen)
    lengths = torch.randint(max(1, seq // 2), seq + 1, (batch,), generator=gen)
    lengths[0] = seq
    mask = (torch.arange(seq).unsqueeze(0) < lengths.unsqueeze(1)).to(torch.int64)
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad_id))
    return ids, mask


def _load(folder: HFFolder, auto_class: str) -> torch.nn.Module:
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    loader = getattr(transformers, auto_class)
    model: torch.nn.Module = loader.from_pretrained(
        str(folder.path), local_files_only=True, use_safetensors=True
    )
    return model


def sentence_batches() -> list[list[str]]:
    """Real sentences: a batch of short ones, and the longest mixed with the shortest."""
    ordered = sorted(SENTENCES, key=len)
    return [ordered[:8], ordered[:2] + ordered[-3:]]


def _encode_reference(folder: HFFolder, pooling: Pooling) -> LibraryReference:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder.path), device="cpu", local_files_only=True)
    cases = []
    for texts in sentence_batches():
        expected = model.encode(texts, convert_to_tensor=True, batch_size=len(texts)).cpu()
        cases.append(_case(texts, expected))
    return LibraryReference(library="sentence-transformers encode()", cases=tuple(cases))


def _pipeline_reference(folder: HFFolder, labels: list[str]) -> LibraryReference:
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(folder.path), device="cpu")
    cases = []
    for texts in sentence_batches():
        answers = cast(
            list[list[dict[str, Any]]],
            classify(texts, top_k=None, truncation=True, max_length=window(folder)),
        )
        probs = torch.tensor(
            [
                [next(a["score"] for a in row if a["label"] == label) for label in labels]
                for row in answers
            ]
        )
        cases.append(_case(texts, probs))
    return LibraryReference(
        library="transformers text-classification pipeline",
        cases=tuple(cases),
        activation="softmax",
    )


def _case(texts: list[str], expected: torch.Tensor) -> LibraryCase:
    label = f"{len(texts)} sentences of {min(map(len, texts))}-{max(map(len, texts))} characters"
    return LibraryCase(label, tuple(t.encode() for t in texts), expected)
