#!/usr/bin/env bash
# Mutation testing of one module with its own tests (mutmut), in a scratch copy of the checkout.
#
#   bash benchmarks/mutation.sh MODULE [BUDGET_SECONDS] [TESTS...]
#
# MODULE: stats | robustness | report | questions | augment | train_step | seeding. The run stops after
# BUDGET_SECONDS (default 600, sized for a 2-core machine) and prints the score so far:
# killed / (killed + survived + timeout). TESTS replaces the module's test files (e.g. to
# measure the score with the tests of an older commit). Survivors: `cd $MUTATION_DIR/MODULE &&
# mutmut show NAME`. Needs `pip install -e ".[dev]"` (mutmut).
set -euo pipefail
module=${1:?usage: bash benchmarks/mutation.sh MODULE [BUDGET_SECONDS] [TESTS...]}
budget=${2:-600}
shift $(( $# < 2 ? $# : 2 ))
case $module in
  stats) src=cnnbench/bench/stats.py; names='cnnbench.bench.stats.*'
    tests="tests/bench/test_stats.py tests/bench/test_stats_pairing.py tests/bench/test_stats_edges.py" ;;
  robustness) src=cnnbench/bench/robustness.py; names='cnnbench.bench.robustness.*'
    tests="tests/bench/test_robustness.py tests/bench/test_robustness_summary.py" ;;
  report) src=cnnbench/bench/family.py  # the report's comparisons (pairing by seed, families); rendering is read
    names='cnnbench.bench.family.x_by_seed* cnnbench.bench.family.x_comparisons* cnnbench.bench.family.x_family*'
    tests="tests/bench/test_report.py tests/bench/test_stats_pairing.py" ;;
  questions) src=cnnbench/bench/questions.py  # per-question Holm, outcomes and verdicts
    names='cnnbench.bench.questions.x__outcomes* cnnbench.bench.questions.x__classify* cnnbench.bench.questions.x_answer* cnnbench.bench.questions.x__verdict*'
    tests="tests/bench/test_questions.py tests/bench/test_questions_edges.py" ;;
  augment) src=cnnbench/data/augment.py; names='cnnbench.data.augment.*'
    tests="tests/data/test_augment_and_loader.py tests/data/test_augment_geometry.py" ;;
  train_step) src=cnnbench/training/fused_update.py  # the update and clipping: the capture needs a GPU
    names='cnnbench.training.fused_update.*'
    tests="tests/training/test_fused_update.py tests/training/test_fused_update_float64.py" ;;
  seeding) src=cnnbench/bench/cell.py  # the seed, axes and data link reaching the data module and the model (slow: forked grid cells)
    names='cnnbench.bench.cell.x_build*'
    tests="tests/bench/test_seeding.py tests/bench/test_cell_build.py" ;;
  *) echo "unknown module '$module'; valid: stats, robustness, report, questions, augment, train_step, seeding" >&2; exit 2 ;;
esac
if (( $# )); then tests="$*"; fi
root=$(cd "$(dirname "$0")/.." && pwd)
work=${MUTATION_DIR:-/tmp/cnnbench-mutation}/$module
rm -rf "$work" && mkdir -p "$work"
cp -r "$root/cnnbench" "$root/pyproject.toml" "$work/"
if [[ $module == report ]]; then mkdir -p "$work/benchmarks" && cp -r "$root/benchmarks/results" "$work/benchmarks/"; fi  # committed reports

mkdir -p "$work/tests" && cp "$root"/tests/*.py "$work/tests/" && cp -r "$root/tests/netguard" "$work/tests/"
for t in $tests; do f=${t%%::*}; mkdir -p "$work/$(dirname "$f")" && cp "$root/$f" "$work/$f"; done
for d in "$root"/tests/*/; do [[ -f "$d/conftest.py" ]] && mkdir -p "$work/tests/$(basename "$d")" && cp "$d/conftest.py" "$work/tests/$(basename "$d")/"; done
# this module and these tests only (the checked-in [tool.mutmut] keeps the settings they share)
python3 - "$work/pyproject.toml" "$src" $tests <<'PY'
import json, re, sys
path, src, tests = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(path).read()
text = re.sub(r"(?m)^only_mutate = .*$", f"only_mutate = {json.dumps([src])}", text)
text = re.sub(r"(?m)^pytest_add_cli_args_test_selection = .*$", f"pytest_add_cli_args_test_selection = {json.dumps(tests)}", text)
open(path, "w").write(text)
PY
cd "$work"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1  # mutants run in processes forked from mutmut: an OpenMP pool would hang them
unset PYTHONPATH  # mutmut puts its mutants/ copy first on the path; another checkout there would hide it
echo "mutation testing $src with $tests (budget ${budget}s, in $work)"
# shellcheck disable=SC2086
timeout --signal=INT "$budget" nice -n 10 mutmut run --max-children 2 $names >mutmut.log 2>&1 || echo "(stopped: budget or error; see $work/mutmut.log)"
mutmut export-cicd-stats >/dev/null 2>&1 || true
python3 - <<'PY'
import json, pathlib
p = pathlib.Path("mutants/mutmut-cicd-stats.json")
s = json.loads(p.read_text()) if p.exists() else {}
done = s.get("killed", 0) + s.get("survived", 0) + s.get("timeout", 0)
print(json.dumps(s))
caught = s.get("killed", 0) + s.get("timeout", 0)
print(f"score {caught}/{done} = {100 * caught / max(done, 1):.1f}% (killed or timed out / tested); "
      f"{s.get('no_tests', 0)} mutants no selected test runs, {s.get('total', 0) - done - s.get('no_tests', 0)} not tested "
      "(outside the selected functions or the budget)")
PY
mutmut results 2>/dev/null | grep -E "survived|no tests" | sed 's/^/  /' || true
