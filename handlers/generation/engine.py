"""Generation with a causal LM: one prompt at a time, tokens handed out as they are produced.

``Generator`` wraps a loaded model (placed by ``handlers.generation.placement``) and its
tokenizer. ``generate`` runs Hugging Face's ``generate`` on one prompt, relaying each new piece
of text to ``on_text`` as soon as it decodes cleanly (a token that ends inside a multi-byte
character waits for the next), and stops early when ``should_stop`` says so (the client left)
or a stop string appears. Prompts run one after another, never padded into a batch, so that
greedy output equals ``model.generate`` on the prompt alone, token for token.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from transformers import PreTrainedTokenizerBase, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from handlers.errors import BadRequest
from handlers.generation.request import DEFAULT_NEW_TOKENS, Parameters

log = logging.getLogger(__name__)

FinishReason = Literal["length", "eos", "stop", "cancelled"]
TextSink = Callable[[str], None]


@dataclass(frozen=True)
class Generated:
    text: str
    token_ids: list[int]
    finish_reason: FinishReason
    prompt_tokens: int


class Generator:
    def __init__(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        device: torch.device,
        max_prompt_tokens: int,
        seed_source: Callable[[int | None], int] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device  # where input ids go (the embedding's device)
        self.max_prompt_tokens = max_prompt_tokens
        # Ranks of a tensor-parallel model must sample alike: they agree on a seed here.
        self.seed_source = seed_source or _local_seed

    def prompt_ids(self, prompt: str) -> torch.Tensor:
        ids: list[int] = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        if len(ids) > self.max_prompt_tokens:
            raise BadRequest(
                f"the prompt has {len(ids)} tokens; this model takes at most "
                f"{self.max_prompt_tokens}"
            )
        return torch.tensor([ids], dtype=torch.long)

    def generate(
        self,
        prompt: str,
        params: Parameters,
        on_text: TextSink | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Generated:
        ids = self.prompt_ids(prompt)
        relay = _Relay(self.tokenizer, on_text)
        cancel = _Cancel(should_stop)
        settings: dict[str, Any] = {"max_new_tokens": _new_tokens(params)}
        if params.do_sample:
            torch.manual_seed(self.seed_source(params.seed))
            settings.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        else:
            settings.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if params.stop:
            settings.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids.to(self.device),
                attention_mask=torch.ones_like(ids).to(self.device),
                streamer=relay,
                stopping_criteria=StoppingCriteriaList([cancel]),
                pad_token_id=self._pad_id(),
                **settings,
            )
        new = [int(t) for t in out[0, ids.shape[1] :].tolist()]
        return Generated(
            text=_decode(self.tokenizer, new),
            token_ids=new,
            finish_reason=self._reason(new, params, cancel.fired),
            prompt_tokens=int(ids.shape[1]),
        )

    def _pad_id(self) -> int | None:
        pad = self.tokenizer.pad_token_id
        return int(pad) if pad is not None else self.tokenizer.eos_token_id

    def _reason(self, new: list[int], params: Parameters, cancelled: bool) -> FinishReason:
        if cancelled:
            return "cancelled"
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        if new and new[-1] in eos_ids:
            return "eos"
        if len(new) >= _new_tokens(params):
            return "length"
        return "stop"


class _Relay(BaseStreamer):
    """Receives token ids from ``generate`` and passes on the text they add, once it decodes
    to whole characters. The first ``put`` is the prompt itself: skipped."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, sink: TextSink | None) -> None:
        self.tokenizer = tokenizer
        self.sink = sink
        self.ids: list[int] = []
        self.sent = 0
        self.prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        self.ids.extend(int(t) for t in value.reshape(-1).tolist())
        text = _decode(self.tokenizer, self.ids)
        if text.endswith("\ufffd"):  # inside a multi-byte character: wait for the rest
            return
        self._send(text)

    def end(self) -> None:
        self._send(_decode(self.tokenizer, self.ids))

    def _send(self, text: str) -> None:
        if self.sink is not None and len(text) > self.sent:
            self.sink(text[self.sent :])
        self.sent = max(self.sent, len(text))


class _Cancel(StoppingCriteria):
    def __init__(self, should_stop: Callable[[], bool]) -> None:
        self.should_stop = should_stop
        self.fired = False

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        if not self.fired and self.should_stop():
            self.fired = True
            log.info("generation stopped: the client is gone")
        done = torch.full((input_ids.shape[0],), self.fired, dtype=torch.bool)
        return done.to(input_ids.device)  # type: ignore[return-value]


def _local_seed(seed: int | None) -> int:
    return seed if seed is not None else random.SystemRandom().randrange(2**63)


def _decode(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    return str(tokenizer.decode(ids, skip_special_tokens=True))


def _new_tokens(params: Parameters) -> int:
    return params.max_new_tokens if params.max_new_tokens is not None else DEFAULT_NEW_TOKENS
