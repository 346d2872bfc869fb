"""The ``deepspeed_tp`` parity check and timing, run under torchrun as TorchServe runs it.

``run_tp_check`` starts ``tp_size`` ranks of this module; every rank loads the packaged folder
through ``handlers.generation`` (DeepSpeed AutoTP) and generates the prompts; rank 0 writes the
tokens and timing to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

TIMEOUT_S = 900


def run_tp_check(
    folder: Path, prompts: list[str], tp_size: int, work: Path
) -> tuple[list[list[int]], dict[str, float]]:
    prompts_file = work / "tp_prompts.json"
    prompts_file.write_text(json.dumps(prompts))
    result = work / "tp_result.json"
    result.unlink(missing_ok=True)
    env = {**os.environ, "LOCAL_SIZE": str(tp_size), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={tp_size}",
        "-m",
        "export.generation.tp_check",
        str(folder),
        str(prompts_file),
        str(result),
    ]
    log_file = work / "torchrun.log"
    with log_file.open("w") as log:
        done = subprocess.run(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=TIMEOUT_S, check=False
        )
    if done.returncode != 0 or not result.is_file():
        tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"torchrun exited {done.returncode}: {' | '.join(tail)} ({log_file})")
    data = json.loads(result.read_text())
    return data["tokens"], data["timing"]


def main() -> None:
    import torch
    from transformers import AutoTokenizer

    from export.generation.pipeline import time_generation
    from handlers.generation.engine import Generator
    from handlers.generation.load import rank0_seed
    from handlers.generation.placement import Placement, load_model
    from handlers.generation.request import Parameters

    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("prompts", type=Path)
    parser.add_argument("result", type=Path)
    args = parser.parse_args()
    prompts = json.loads(args.prompts.read_text())
    loaded = load_model(args.folder, "deepspeed_tp", Placement(), torch.device("cpu"))
    tokenizer = AutoTokenizer.from_pretrained(args.folder, local_files_only=True)
    generator = Generator(
        loaded.model, tokenizer, loaded.input_device, 10**6, seed_source=rank0_seed
    )
    greedy = Parameters(max_new_tokens=16)
    tokens = [generator.generate(p, greedy).token_ids for p in prompts]
    timing = time_generation(generator)
    if os.environ.get("RANK", "0") == "0":
        args.result.write_text(json.dumps({"tokens": tokens, "timing": timing}))


if __name__ == "__main__":
    main()
