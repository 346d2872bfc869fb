"""Lightning modules for the image and text tasks, declared with ``lightning_spec`` in their own
module file as a user's would be (docs/export.md), trained for one epoch in the test.

The module file also holds declarations servegate must refuse before exporting (``REFUSED``),
each missing one thing the TorchServe worker needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tests.support.lightning_models import fit_and_save, write_module

LABELS = ("cat", "dog", "fox")
SENTIMENTS = ("negative", "positive")
# The image task's settings: short side to 40, centre 32x32 crop, these channel statistics.
IMAGE_CONFIG = {
    "resize_mode": "center_crop",
    "resize": 40,
    "crop": 32,
    "mean": [0.5, 0.4, 0.3],
    "std": [0.2, 0.25, 0.3],
}
MAX_TOKENS = 12
WORDS = ("[PAD]", "[UNK]", "a", "the", "good", "bad", "movie", "plot", "great", "awful", "fun")

SOURCE = '''
from pathlib import Path

import lightning.pytorch as L
import torch
from torch import nn

from export.sources.lightning_spec import lightning_spec
from export.spec import DimRange

IMAGE_CONFIG = {image_config!r}
TOKENS = {{
    "tokenizer": "tokenizer.json", "max_length": {max_tokens}, "pad_id": 0, "pad_token": "[PAD]"
}}
TOKENIZER = Path(__file__).with_name("tokenizer.json")


class ImageClassifier(L.LightningModule):
    def __init__(self, classes: int = 3, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(24, classes),
        )
        self.example_input_array = torch.randn(2, 3, 32, 32)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class TextClassifier(L.LightningModule):
    """Mean of the token embeddings under the attention mask, then a linear layer."""

    def __init__(self, vocab: int = {vocab}, classes: int = 2) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(vocab, 8)
        self.head = nn.Linear(8, classes)
        self.example_input_array = tokens({{"batch": 2, "sequence": 5}})

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).to(torch.float32)
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(pooled)

    def training_step(self, batch, _):
        ids, mask, y = batch
        return nn.functional.cross_entropy(self(ids, mask), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def tokens(sizes):
    """Token ids and their mask at any batch and sequence length, rows padded at the end."""
    batch, seq = sizes["batch"], sizes["sequence"]
    gen = torch.Generator().manual_seed(batch * 100 + seq)
    ids = torch.randint(2, {vocab}, (batch, seq), generator=gen)
    mask = (torch.arange(seq) < torch.randint(1, seq + 1, (batch, 1), generator=gen)).long()
    mask[0] = 1
    return ids * mask, mask


IMAGES = lightning_spec(
    ImageClassifier, task="image_classification", labels={labels!r}, task_config=IMAGE_CONFIG
)
TEXTS = lightning_spec(
    TextClassifier,
    task="text_classification",
    labels={sentiments!r},
    files={{"tokenizer.json": TOKENIZER}},
    task_config=TOKENS,
    input_names=("input_ids", "attention_mask"),
    shapes=(("batch", "sequence"), ("batch", "sequence")),
    dims={{"sequence": DimRange(min=1, max={max_tokens}, export=4, check=(3, 7))}},
    example_inputs=tokens,
)

# Refused before anything is exported; each lacks one thing the worker needs.
NO_LABELS = lightning_spec(ImageClassifier, task="image_classification", task_config=IMAGE_CONFIG)
WRONG_SIZE = lightning_spec(
    ImageClassifier,
    task="image_classification",
    labels={labels!r},
    task_config={{**IMAGE_CONFIG, "resize": 256, "crop": 224}},
)
NO_TOKENIZER = TEXTS.model_copy(update={{"files": {{}}}})
FIXED_LENGTH = lightning_spec(
    TextClassifier,
    task="text_classification",
    labels={sentiments!r},
    files={{"tokenizer.json": TOKENIZER}},
    task_config=TOKENS,
    input_names=("input_ids", "attention_mask"),
)
'''


@dataclass(frozen=True)
class TrainedTasks:
    module_file: Path
    image_ckpt: Path
    text_ckpt: Path
    image: Any  # the trained ImageClassifier
    text: Any  # the trained TextClassifier
    tokenizer: Path


def write_tokenizer(path: Path) -> Path:
    """A word-level tokenizer.json: lower-cased, split on whitespace and punctuation."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()  # type: ignore[assignment]
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # type: ignore[assignment]
    tokenizer.save(str(path))
    return path


def train_tasks(folder: Path, name: str) -> TrainedTasks:
    """Write module ``name`` and its tokenizer; train both classifiers for one epoch."""
    source_text = SOURCE.format(
        image_config=IMAGE_CONFIG,
        max_tokens=MAX_TOKENS,
        vocab=len(WORDS),
        labels=list(LABELS),
        sentiments=list(SENTIMENTS),
    )
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = write_tokenizer(folder / "tokenizer.json")
    source = write_module(folder, name, source_text)
    torch.manual_seed(0)
    image = source.ImageClassifier()
    pixels = torch.utils.data.TensorDataset(torch.randn(16, 3, 32, 32), torch.randint(0, 3, (16,)))
    fit_and_save(image, pixels, folder / "image.ckpt", batch_size=8)
    text = source.TextClassifier()
    ids, mask = source.tokens({"batch": 16, "sequence": 6})
    sentences = torch.utils.data.TensorDataset(ids, mask, torch.randint(0, 2, (16,)))
    fit_and_save(text, sentences, folder / "text.ckpt", batch_size=8)
    return TrainedTasks(
        folder / f"{name}.py",
        folder / "image.ckpt",
        folder / "text.ckpt",
        image.eval(),
        text.eval(),
        tokenizer,
    )
