"""Text generation on GPUs, as a servegate worker runs it (``handlers.generation``).

    python -m bench.gpu_generation build --out /tmp/llama1b      # random 1.1B Llama, bf16
    python -m bench.gpu_generation run --model /tmp/llama1b --format eager --out gen-eager.json
    python -m bench.gpu_generation run ... --format accelerate --max-memory 0=1300MiB,1=1300MiB
    torchrun --nproc-per-node 2 -m bench.gpu_generation run ... --format deepspeed_tp

``run`` loads the folder with the worker's own placement code and, for each concurrency N,
lets N requests arrive at once and serves them the way a TorchServe worker of a generation
archive does: one after another (batch size 1, no continuous batching). Each request's time to
first token counts its wait in that queue. For comparison, ``static batch`` runs the same N
prompts as one padded ``model.generate`` call: what batching alone would give, short of a
dedicated engine's continuous batching. Memory is the peak allocated per GPU.

The model is a real architecture (transformers' ``LlamaConfig``, TinyLlama's shape) with random
weights and a word-level tokenizer made here: nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("bench.gpu_generation")

VOCAB = 32000
PROMPT_WORDS = 120


def build(out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["[UNK]", "[PAD]", "[BOS]", "[EOS]"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for i in range(VOCAB - len(specials)):
        vocab[f"w{i}"] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")
    fast: Any = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="[BOS]",
        eos_token="[EOS]",
    )
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=3,
    )
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model: Any = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = None  # random weights: run to max_new_tokens
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(str(out), max_shard_size="500MB")
    fast.save_pretrained(str(out))
    log.info("saved a %.2fB-parameter Llama to %s", params / 1e9, out)


def prompts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(f"w{rng.randrange(VOCAB - 4)}" for _ in range(PROMPT_WORDS)) for _ in range(count)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoTokenizer

    from handlers.generation.engine import Generator
    from handlers.generation.load import rank0_seed
    from handlers.generation.placement import Placement, load_model
    from handlers.generation.request import Parameters

    rank = int(os.environ.get("RANK", "0"))
    caps = dict(item.split("=", 1) for item in args.max_memory.split(",") if item)
    placement = Placement(dtype="bfloat16", device_map=args.device_map, max_memory=caps)
    torch.cuda.init()
    for d in range(torch.cuda.device_count()):
        torch.cuda.reset_peak_memory_stats(d)
    started = time.perf_counter()
    loaded = load_model(args.model, args.format, placement, torch.device("cuda:0"))
    load_s = time.perf_counter() - started
    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    generator = Generator(
        loaded.model, tokenizer, loaded.input_device, 4096, seed_source=rank0_seed
    )
    params = Parameters(max_new_tokens=args.new_tokens)
    # Warm-up at the full length: the first pass over each KV-cache length picks its kernels.
    generator.generate(prompts(1, 99)[0], params)
    rows: list[dict[str, Any]] = []
    for concurrency in args.concurrency:
        rows.append(_sequential(generator, params, concurrency))
        if args.format != "deepspeed_tp":
            rows.append(_static_batch(loaded.model, tokenizer, args.new_tokens, concurrency))
    memory = {
        f"cuda:{d}": round(torch.cuda.max_memory_allocated(d) / 2**30, 2)
        for d in range(torch.cuda.device_count())
    }
    result = {
        "format": args.format,
        "placement": loaded.describe(),
        "load_s": round(load_s, 1),
        "new_tokens": args.new_tokens,
        "prompt_tokens": PROMPT_WORDS,
        "peak_memory_gib": memory,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0),
        "rows": rows,
    }
    if rank == 0:
        args.out.write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))


def _sequential(generator: Any, params: Any, concurrency: int) -> dict[str, Any]:
    """N requests arrive at once; the worker serves them one after another."""
    import torch

    batch = prompts(concurrency, concurrency)
    arrived = time.perf_counter()
    ttft: list[float] = []
    tokens = 0
    for prompt in batch:
        first: list[float] = []

        def mark(_: str, first: list[float] = first) -> None:
            if not first:
                first.append(time.perf_counter())

        done = generator.generate(prompt, params, on_text=mark)
        torch.cuda.synchronize()
        ttft.append((first[0] if first else time.perf_counter()) - arrived)
        tokens += len(done.token_ids)
    elapsed = time.perf_counter() - arrived
    return _row("one at a time (TorchServe worker)", concurrency, ttft, tokens, elapsed)


def _static_batch(model: Any, tokenizer: Any, new_tokens: int, concurrency: int) -> dict[str, Any]:
    """The same N prompts as one padded generate call (first token: a 1-token call)."""
    import torch

    tokenizer.padding_side = "left"
    batch = tokenizer(prompts(concurrency, concurrency), return_tensors="pt", padding=True)
    batch = {k: v.to("cuda:0") for k, v in batch.items()}
    settings = {"do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    with torch.inference_mode():
        started = time.perf_counter()
        model.generate(**batch, max_new_tokens=1, **settings)
        torch.cuda.synchronize()
        first = time.perf_counter() - started
        started = time.perf_counter()
        out = model.generate(**batch, max_new_tokens=new_tokens, **settings)
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
    tokens = int((out.shape[1] - batch["input_ids"].shape[1]) * concurrency)
    return _row("static batch (one generate call)", concurrency, [first], tokens, elapsed)


def _row(
    mode: str, concurrency: int, ttft: list[float], tokens: int, elapsed: float
) -> dict[str, Any]:
    return {
        "mode": mode,
        "concurrency": concurrency,
        "ttft_p50_ms": round(statistics.median(ttft) * 1000, 1),
        "ttft_p99_ms": round(percentile(ttft, 0.99) * 1000, 1),
        "tokens_per_s": round(tokens / elapsed, 1),
        "seconds": round(elapsed, 2),
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("--model", type=Path, required=True)
    r.add_argument("--format", choices=("eager", "accelerate", "deepspeed_tp"), required=True)
    r.add_argument("--device-map", choices=("auto", "balanced"), default="auto")
    r.add_argument("--max-memory", default="", help="e.g. 0=1300MiB,1=1300MiB")
    r.add_argument("--new-tokens", type=int, default=64)
    r.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32]
    )
    r.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "build":
        build(args.out)
    else:
        run(args)


if __name__ == "__main__":
    main()
