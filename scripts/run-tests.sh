#!/usr/bin/env bash
# The whole suite (make test): first every test but the `timed` ones in parallel workers (most real-process
# tests wait on cameras, brokers and browsers, not on the CPU), then the `timed` ones alone, so that a
# bound such as "online within 2 s of the camera's return" measures the agent and not a neighbour's load.
# Arguments go to both runs (files, -k ...); TEST_WORKERS sets the number of workers (default 2).
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
workers=${TEST_WORKERS:-2}
no_tests=5  # pytest's exit code when the selection holds no test: not a failure of the suite

"$py" -m pytest -q -p no:cacheprovider -n "$workers" --dist worksteal -m "not timed" "$@"
parallel=$?
"$py" -m pytest -q -p no:cacheprovider -m timed "$@"
alone=$?
[[ $parallel -eq $no_tests && $alone -ne $no_tests ]] && parallel=0
[[ $alone -eq $no_tests && $parallel -ne $no_tests ]] && alone=0
if [[ $parallel -ne 0 ]]; then exit "$parallel"; fi
exit "$alone"
