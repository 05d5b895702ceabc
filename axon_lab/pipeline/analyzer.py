"""Prompt analysis: intent (embedding vs prototypes), task type (keyword rules), entities (patterns).

Each step is a plain function so the orchestrator can run the three concurrently (threads:
the embedding step releases the GIL inside torch) or one after the other.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from axon_lab import embeddings

#: Intent prototypes: the intent whose prototype embedding is nearest wins.
INTENTS: dict[str, str] = {
    "question": "What is this and how does it work? Explain the concept.",
    "instruction": "Write code that implements this feature for me.",
    "analysis": "Analyze this codebase and suggest improvements to the architecture.",
    "debugging": "Why does this raise an error? Fix the bug in this traceback.",
    "comparison": "Compare these two approaches and tell me which one is better.",
    "conversation": "Hello, thanks, good morning, how are you?",
}

TASK_RULES: dict[str, tuple[str, ...]] = {
    "code_generation": ("write", "implement", "create", "generate", "build", "add"),
    "code_review": (
        "review",
        "improve",
        "refactor",
        "suggest",
        "architecture",
        "optimize",
        "optimise",
    ),
    "debugging": ("error", "bug", "fix", "exception", "traceback", "fails", "crash", "broken"),
    "explanation": ("what", "why", "how", "explain", "describe", "meaning", "difference"),
    "documentation": ("document", "docstring", "readme", "docs", "comment"),
    "testing": ("test", "pytest", "unittest", "mock", "coverage"),
}

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DOTTED = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\b")
_CAMEL = re.compile(r"\b[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+\b")
_SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\(\)")
_QUOTED = re.compile(r"[`'\"]([^`'\"\n]{2,60})[`'\"]")
TECH_TERMS = frozenset(
    {
        "python",
        "typescript",
        "javascript",
        "mongodb",
        "redis",
        "qdrant",
        "docker",
        "kubernetes",
        "asyncio",
        "json",
        "http",
        "sql",
        "regex",
        "unicode",
        "thread",
        "threads",
        "socket",
        "pickle",
        "hnsw",
        "api",
        "rest",
        "graphql",
        "node",
        "react",
        "pandas",
        "numpy",
    }
)


def _prototypes(backend: str | None = None) -> tuple[list[str], np.ndarray]:
    return _prototypes_for(embeddings.check_backend(backend))


@lru_cache(maxsize=len(embeddings.BACKENDS))
def _prototypes_for(backend: str) -> tuple[list[str], np.ndarray]:
    names = list(INTENTS)
    return names, embeddings.embed([INTENTS[n] for n in names], backend=backend)


def classify_intent(
    text: str, vector: np.ndarray | None = None, backend: str | None = None
) -> dict[str, object]:
    """Nearest intent prototype by cosine similarity (embeds ``text`` unless ``vector`` is given)."""
    names, protos = _prototypes(backend)
    v = embeddings.embed_one(text, backend) if vector is None else vector
    sims = protos @ v
    best = int(np.argmax(sims))
    return {"intent": names[best], "confidence": round(float(sims[best]), 4)}


def identify_task_type(text: str) -> dict[str, object]:
    """Keyword-rule task type; ``general`` when nothing matches."""
    words = [w.lower() for w in _WORD.findall(text)]
    scores = {task: sum(w in kws for w in words) for task, kws in TASK_RULES.items()}
    task, score = max(scores.items(), key=lambda kv: kv[1])
    return {
        "taskType": task if score else "general",
        "scores": {k: v for k, v in scores.items() if v},
    }


def extract_entities(text: str, known: frozenset[str] = frozenset()) -> list[dict[str, str]]:
    """Code identifiers, dotted names, CamelCase/snake_case words, quoted terms, tech terms."""
    found: dict[str, str] = {}
    for m in _DOTTED.finditer(text):
        found.setdefault(m.group(0), "dotted_name")
    for m in _CALL.finditer(text):
        found.setdefault(m.group(1), "call")
    for m in _CAMEL.finditer(text):
        found.setdefault(m.group(0), "camel_case")
    for m in _SNAKE.finditer(text):
        found.setdefault(m.group(0), "snake_case")
    for m in _QUOTED.finditer(text):
        found.setdefault(m.group(1), "quoted")
    for w in _WORD.findall(text):
        lw = w.lower()
        if lw in TECH_TERMS:
            found.setdefault(w, "technology")
        elif lw in known:
            found.setdefault(w, "module")
    return [{"text": k, "type": v} for k, v in found.items()]
