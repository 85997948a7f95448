"""``python -m benchmarks.offline_classify``: classify on vLLM's engine directly, no servers.

Two engine-level questions the server benchmark cannot answer on its own, each measured
as constrained decoding (what vLLM's server does with ``response_format``) against label
scoring (what Wrapserve does), on one engine in one run:

- ``--block-size``: how much the KV block size (the prefix cache's unit) is worth.
- ``--layout aligned``: what the ratio becomes when the system turn (instructions and the
  label set) is padded to whole KV blocks, as Wrapserve's engine does
  (``server/vllm/prefix_layout.py``), so the prefix cache serves all of it. ``as-rendered`` is
  the wrapper's messages as any client would send them.

Each mode gets its own unique texts (none meets a prompt another run cached), after a
warm-up on a third set. The model, dtype and grammar backend are the server benchmark's.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.servers import ServerConfig
from benchmarks.workloads import classify_tasks
from server.invocation.decoding import choice_field
from server.vllm.prefix_layout import ChatLayout


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.offline_classify", description=__doc__)
    parser.add_argument("--block-size", type=int, default=32)
    parser.add_argument("--layout", choices=("as-rendered", "aligned"), default="as-rendered")
    parser.add_argument("--calls", type=int, default=150, help="classify calls per mode")
    parser.add_argument("--model-dir", type=Path, default=ServerConfig().model_dir)
    parser.add_argument("--dtype", default="float32")
    return parser.parse_args()


def main() -> int:
    args = _args()
    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import StructuredOutputsParams

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    n = args.calls
    tasks = classify_tasks(2 * n + 20, seed=123)
    layout = ChatLayout(tokenizer, None, args.block_size)
    prompts = [
        layout.encode_chat(
            [{"role": m.role, "content": m.content} for m in task.messages()],
            align_through=task.wrapper.user_head() if args.layout == "aligned" else None,
        )
        for task in tasks
    ]
    llm = LLM(
        model=str(args.model_dir),
        dtype=args.dtype,
        enforce_eager=True,
        max_model_len=8192,
        block_size=args.block_size,
        enable_prefix_caching=True,
        kv_cache_memory_bytes=2**30,
        seed=0,
        structured_outputs_config={"backend": "outlines"},
    )

    def decode(indices: list[int]) -> float:
        params = [
            SamplingParams(
                max_tokens=16,
                temperature=0,
                structured_outputs=StructuredOutputsParams(json=tasks[i].schema()),
            )
            for i in indices
        ]
        started = time.perf_counter()
        llm.generate([TokensPrompt(prompt_token_ids=prompts[i]) for i in indices], params, use_tqdm=False)
        return len(indices) / (time.perf_counter() - started)

    def score(indices: list[int]) -> float:
        requests: list[TokensPrompt] = []
        params: list[SamplingParams] = []
        for i in indices:
            field = choice_field(tasks[i].schema())
            assert field is not None
            firsts = [
                tokenizer.encode(field.continuation(label), add_special_tokens=False)[0]
                for label in field.labels
            ]
            requests.append(
                {"prompt_token_ids": prompts[i] + tokenizer.encode(field.prefix, add_special_tokens=False)}
            )
            params.append(SamplingParams(max_tokens=1, temperature=0, logprob_token_ids=firsts))
        started = time.perf_counter()
        llm.generate(requests, params, use_tqdm=False)
        return len(indices) / (time.perf_counter() - started)

    warm = list(range(2 * n, 2 * n + 20))
    decode(warm)
    score(warm)
    decoded = decode(list(range(n)))
    scored = score(list(range(n, 2 * n)))
    result = {
        "block_size": args.block_size,
        "layout": args.layout,
        "calls_per_mode": n,
        "prompt_tokens_mean": round(sum(map(len, prompts)) / len(prompts), 1),
        "decoded_calls_per_s": round(decoded, 2),
        "scored_calls_per_s": round(scored, 2),
        "scored_over_decoded": round(scored / decoded, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
