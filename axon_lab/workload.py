"""Prompt workloads: the guide's bodies, a realistic developer prompt set, Zipf-like repetition, the request bodies that carry them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Bodies used by the guide's load-test scenarios.
GUIDE_PROMPTS: dict[str, str] = {
    "health": "",
    "simple": "Hello",
    "complex": "Analyze this TypeScript codebase and suggest improvements to the architecture",
    "sustained": "test",
    "baseline": "What is TypeScript?",
}

#: Developer prompts about the corpus' subject (the Python standard library).
PROMPTS: tuple[str, ...] = (
    "How do I parse JSON with a custom decoder in Python?",
    "What is the difference between asyncio.gather and asyncio.wait?",
    "Explain how the pickle protocol handles class instances",
    "Why does my socket connection time out and how do I set a timeout?",
    "How can I read a CSV file with a different delimiter?",
    "What does functools.lru_cache do with keyword arguments?",
    "Write a function that walks a directory tree with os.walk",
    "How do I format a datetime in ISO 8601 with a timezone?",
    "Fix the error: 'dictionary changed size during iteration'",
    "Compare threading and multiprocessing for CPU-bound work",
    "How does the logging module propagate records to parent loggers?",
    "What is a context manager and how does contextlib.contextmanager work?",
    "How do I compress and decompress data with zlib and gzip?",
    "Explain the regular expression lookahead syntax in the re module",
    "How can I run a subprocess and capture its output safely?",
    "What does the dataclasses field default_factory do?",
    "How do I use argparse subcommands?",
    "Review this code that uses urllib to download a page and suggest improvements",
    "How do weak references work in Python?",
    "What is the difference between deepcopy and copy?",
    "How do I implement __hash__ and __eq__ for a custom class?",
    "Explain how the import system finds modules on sys.path",
    "How can I measure execution time with timeit?",
    "Write unittest tests with mock.patch for a function that calls an API",
    "How does the email package parse MIME messages?",
    "What are the rules for decimal rounding with the decimal module?",
    "How do I create a temporary directory that is cleaned up automatically?",
    "Explain the struct module format characters for packing binary data",
    "How does heapq implement a priority queue?",
    "What is the GIL and how does it affect threads?",
    "How do I handle signals like SIGTERM in a Python program?",
    "Explain the difference between str.encode and bytes.decode errors handlers",
    "How can I iterate over the lines of a large file lazily?",
    "What does typing.Protocol provide compared to abstract base classes?",
    "How do I use sqlite3 with parameterized queries?",
    "How does the http.server module handle requests?",
    "Explain enum.Flag and how to combine members",
    "How can I schedule a callback later with the asyncio event loop?",
    "What are generators and how does yield from delegate?",
    "How do I validate an IP address with the ipaddress module?",
)


def zipf_workload(
    n: int, *, s: float = 1.1, prompts: tuple[str, ...] = PROMPTS, seed: int = 0
) -> list[str]:
    """``n`` prompts drawn with Zipf-like repetition (rank r has weight ``1 / r**s``).

    ``s = 0`` is uniform; larger ``s`` repeats the head more (higher cache hit rates).
    Deterministic for a given seed.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    ranks = np.arange(1, len(prompts) + 1, dtype=float)
    weights = ranks ** (-s)
    weights /= weights.sum()
    rng = np.random.default_rng(seed)
    return [prompts[i] for i in rng.choice(len(prompts), size=n, p=weights)]


def distinct_prompts(n: int) -> list[str]:
    """``n`` different prompts (cycling :data:`PROMPTS` with a suffix) so every cache misses."""
    return [
        f"{PROMPTS[i % len(PROMPTS)]} (variant {i // len(PROMPTS)})"
        if i >= len(PROMPTS)
        else PROMPTS[i]
        for i in range(n)
    ]


def prompt_bodies(
    texts: Sequence[str], workspace: str = "test", *, source: str = "axon_lab"
) -> list[dict[str, str]]:
    """``POST /api/v1/prompts/process`` bodies, one per prompt text: ``{"prompt", "workspaceId",
    "source"}`` (``source`` says who sent it: ``axon_lab`` for the lab's load runs, ``bench``...).
    """
    return [{"prompt": t, "workspaceId": workspace, "source": source} for t in texts]
