"""``python -m benchmarks.prompt_encoding``: encoding a wrapper call's prompt, whole vs by pieces.

The bench's own classify and extract calls (``benchmarks.workloads``), each rendered with
the embedded model's chat template and encoded two ways in the same run, alternating call
by call: the tokenizer's ``encode`` of the whole text, and ``PieceEncoder`` (the pieces
between special tokens, the ones calls repeat remembered), which the server's prompt
layout uses. Each call's text is new to the encoder, as in the server, so its user turn is
encoded every time; both ways must give the same ids.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.servers import ServerConfig
from benchmarks.workloads import SEEDS, WORKLOADS
from server.vllm.piece_encoding import PieceEncoder
from server.vllm.prefix_layout import ChatLayout


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prompt_encoding", description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=ServerConfig().model_dir)
    parser.add_argument("--calls", type=int, default=400, help="calls per workload")
    return parser.parse_args()


def main() -> int:
    args = _args()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    layout = ChatLayout(tokenizer, None, None)
    encoder = PieceEncoder.for_tokenizer(tokenizer)
    if encoder is None:
        print("this tokenizer is not piece-local: the server encodes whole texts")
        return 1
    for workload in ("classify", "extract"):
        texts = []
        for task in WORKLOADS[workload](args.calls, SEEDS[workload]):
            data = task.wrapper.Input.model_validate(task.input)
            chat = [{"role": m.role, "content": m.content} for m in task.wrapper.messages(data)]
            texts.append(layout.render(chat, True))
        whole_us, pieces_us, tokens = [], [], []
        for text in texts:
            started = time.perf_counter()
            expected = tokenizer.encode(text, add_special_tokens=False)
            whole_us.append((time.perf_counter() - started) * 1e6)
            started = time.perf_counter()
            ids = encoder.encode(text)
            pieces_us.append((time.perf_counter() - started) * 1e6)
            if ids != expected:
                print(f"{workload}: the two encodings differ for {text!r}")
                return 1
            tokens.append(len(ids))
        whole, pieces = statistics.median(whole_us), statistics.median(pieces_us)
        print(
            f"{workload}: {len(texts)} prompts, median {statistics.median(tokens):.0f} tokens; "
            f"median encode whole {whole:.1f} us, by pieces {pieces:.1f} us, ratio {pieces / whole:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
