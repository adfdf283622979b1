#!/usr/bin/env bash
# The house rules of CONTRIBUTING.md, checked (part of tests/run-all.sh):
#   1. rustfmt: `cargo fmt --check`;
#   2. the module graph (tests/module_graph.py): no import cycle, no upward import between the
#      layers of ARCHITECTURE.md, in src/ and models/c3n/;
#   3. no tracked source file (Rust, Python, shell) over 600 lines;
#   4. ruff (pinned in models/requirements-lint.txt, installed into .venv when missing): lint of
#      models/ and the Python test scripts (models/ruff.toml, tests/ruff.toml; the code keeps its
#      compact 120-column style, so `ruff format` is not enforced);
#   5. no `Result<_, String>` in the library (typed thiserror errors; anyhow and plain messages
#      only in the binary, src/main.rs and src/cli/);
#   6. commit subjects of at most 72 characters, from the first commit that follows the rule
#      (SUBJECT_RULE_SINCE) to HEAD;
#   7. clippy with every optional feature, warnings denied — unless --no-clippy (tests/run-all.sh
#      runs clippy in its background cargo builds instead, so that it overlaps the Python steps).
#
#   bash tests/lint.sh [--no-clippy]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MAX_LINES=600
FEATURES=ffmpeg,mqtt-tls,mqtt-broker,window,ort
step() { printf '\n==> lint: %s  [%s]\n' "$*" "$(date +%T)"; }
fail=0

step "cargo fmt --check"
cargo fmt --all -- --check || { echo "FAIL lint: run 'cargo fmt --all'" >&2; fail=1; }

step "module graph (tests/module_graph.py)"
python3 tests/module_graph.py || fail=1

step "source files over $MAX_LINES lines"
long=$(git ls-files -z '*.rs' '*.py' '*.sh' | xargs -0 wc -l | awk -v m="$MAX_LINES" '$2 != "total" && $1 > m')
if [ -n "$long" ]; then
  echo "$long"
  echo "FAIL lint: the files above are over $MAX_LINES lines: split them by responsibility" >&2
  fail=1
else
  echo "none"
fi

step "no Result<_, String> in the library (src/ but main.rs and cli/)"
stringly=$(grep -rnE 'Result<.*, *String>' src --include='*.rs' | grep -v -e '^src/main\.rs:' -e '^src/cli/' || true)
if [ -n "$stringly" ]; then
  echo "$stringly"
  echo "FAIL lint: library functions above return Result<_, String>: give them a thiserror type" >&2
  fail=1
else
  echo "none"
fi

step "ruff (models/, tests/**/*.py)"
PY="$ROOT/.venv/bin/python"
if [ ! -x "$PY" ]; then
  echo "FAIL lint: no .venv (run tests/setup.sh python first)" >&2
  fail=1
else
  want=$(grep -E '^ruff==' models/requirements-lint.txt | cut -d= -f3)
  have=$("$PY" -m ruff --version 2>/dev/null | awk '{print $2}') || true
  [ "$have" = "$want" ] || "$PY" -m pip install -q -r models/requirements-lint.txt
  "$PY" -m ruff check models tests || fail=1
fi

# The commits before this one had no subject limit; from here on, every subject is <= 72.
SUBJECT_RULE_SINCE=55375af
step "commit subjects since $SUBJECT_RULE_SINCE (<= 72 characters)"
if git cat-file -e "$SUBJECT_RULE_SINCE^{commit}" 2>/dev/null; then
  over=$(git log --format='%H %s' "$SUBJECT_RULE_SINCE^..HEAD" | awk 'length($0) - 41 > 72')
  if [ -n "$over" ]; then
    echo "$over"
    echo "FAIL lint: commit subjects over 72 characters (above): reword them before merging" >&2
    fail=1
  else
    echo "all $(git rev-list --count "$SUBJECT_RULE_SINCE^..HEAD") subjects within 72 characters"
  fi
else
  echo "SKIP lint: commit $SUBJECT_RULE_SINCE is not in this clone (shallow?): subjects not checked" >&2
fi

if [ "${1:-}" != --no-clippy ]; then
  step "cargo clippy --all-targets --features $FEATURES -- -D warnings"
  cargo clippy --locked --all-targets --features "$FEATURES" -- -D warnings || fail=1
fi

[ "$fail" = 0 ] || { echo "FAIL: tests/lint.sh (above)" >&2; exit 1; }
echo "lint ok"
