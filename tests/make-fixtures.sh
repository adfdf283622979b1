#!/usr/bin/env bash
# Makes the test artefacts that the Rust tests read from $C3N_TEST_ARTIFACTS (default
# models/build/test-fixtures): the contract models, the reduced-size imported
# networks (issue 24), the front-end reference, the pipeline clips,
# the untrained C3N exports with their PyTorch reference outputs, the small AVS-Composites split
# and the Python evaluator's results on it (reference of tests/eval_parity.rs). Needs the venv
# and the pinned weights (`bash tests/setup.sh python`). Part of tests/run-all.sh; run it alone
# to work on the Rust tests:
#
#   bash tests/make-fixtures.sh
#   C3N_TEST_ARTIFACTS=$PWD/models/build/test-fixtures cargo test --locked --test run_pipeline
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export C3N_TEST_ARTIFACTS="${C3N_TEST_ARTIFACTS:-$ROOT/models/build/test-fixtures}"
export PYTHONPATH="$ROOT/models${PYTHONPATH:+:$PYTHONPATH}"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { echo "FAIL tests/make-fixtures.sh: no .venv (run: bash tests/setup.sh python)" >&2; exit 1; }

"$PY" tests/fixtures/make_contract_model.py "$C3N_TEST_ARTIFACTS"
"$PY" tests/fixtures/make_contract_model_s3.py "$C3N_TEST_ARTIFACTS"
"$PY" tests/fixtures/make_contract_model_inview.py "$C3N_TEST_ARTIFACTS"
"$PY" tests/fixtures/make_imported_models.py "$C3N_TEST_ARTIFACTS" 2>&1 | { grep -v -i warn || true; }
"$PY" tests/fixtures/make_frontend_ref.py "$C3N_TEST_ARTIFACTS"
"$PY" tests/fixtures/make_pipeline_clip.py "$C3N_TEST_ARTIFACTS"
"$PY" tests/fixtures/make_two_objects.py "$C3N_TEST_ARTIFACTS"
(cd models && "$PY" -m c3n.export --config edge --frames 5 1 --out-dir build \
   --reference-dir "$C3N_TEST_ARTIFACTS" 2>&1 | grep -v -i warning)
[ -d models/build/avs-composites-small ] || \
  (cd models && "$PY" -m c3n.data.composites build/avs-composites-small --small --seed 7)

# the Python evaluator on the small composite test split (reference for tests/eval_parity.rs)
mkdir -p "$C3N_TEST_ARTIFACTS/eval_parity"
(cd models && "$PY" -m c3n.evaluate build/avs-composites-small --split test --model c3n-edge-t5.onnx --json) \
  > "$C3N_TEST_ARTIFACTS/eval_parity/python.jsonl"
echo "$ROOT/models/build/avs-composites-small" > "$C3N_TEST_ARTIFACTS/eval_parity/dataset.txt"
echo "$ROOT/models/c3n-edge-t5.onnx" > "$C3N_TEST_ARTIFACTS/eval_parity/model.txt"
echo "test artefacts in $C3N_TEST_ARTIFACTS"
