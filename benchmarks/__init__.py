"""Side-by-side benchmark harness: Wrapserve vs vLLM's own OpenAI server, same model and backend.

Run it with ``make bench`` (CPU mode) or ``python -m benchmarks.run --help``. Every figure it
reports is a ratio of two measurements taken in the same run, because the machines it runs on
are shared and noisy. ``benchmarks/gpu/`` holds the GPU-mode script.
"""
