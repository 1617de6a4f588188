"""Imports domain: other tools' output files (nccl-tests, vLLM, SGLang, LLMPerf, llama-bench, exo,
mlx_lm) uploaded through the API and stored as a normal ingest batch."""
