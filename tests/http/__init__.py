"""HTTP-shape tests on the fake engine (fast, no vLLM)."""
