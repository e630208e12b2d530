#!/usr/bin/env bash
# The Rust agent beside the Python charm frameworks, in one run of the peers
# kit (bench/peers, a copy of shared/bench-peers with a fake `resource-get`,
# per-peer config and a semantic effects check; see bench/RESULTS.md).
#
#   bench/run.sh                         noop, ops, reactive, reactive+basic, rust
#   BENCH_TMP=/dev/shm bench/run.sh      work dir on tmpfs (no fsync waits)
#   RUNS=30 OUT=/tmp/r.md bench/run.sh   more runs per cell; copy the report
#   AGENT_BIN=path/to/wsgi-agent ...     measure that binary instead of building
#   BEFORE_AGENT_BIN=path/to/old/wsgi-agent bench/run.sh
#                                        also an earlier build, as rust-before,
#                                        side by side in the same run
#
# Six scenarios per peer: update-status, config-changed,
# postgres-relation-changed, website-relation-joined with 1/10/100 remote
# units. Prints the table (wall median/min, CPU, peak RSS, hook-tool calls
# by tool, restarts, status), the effects checks and the issue-7 targets.
# The agent is built with: cargo build --release -p agent --bin wsgi-agent-sandbox
# (the charm's handlers on the kit's SANDBOX_ROOT host; see peer-rust/setup.sh)
# (CARGO_TARGET_DIR defaults to /work/tgt/bench).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/tgt/bench}
default="noop ops reactive reactive+basic rust"
export EXTRA_PEERS="rust ../peer-rust FJ_ACTIVATE_VENV=1"
if [ -n "${BEFORE_AGENT_BIN:-}" ]; then
  default="$default rust-before"
  EXTRA_PEERS="$EXTRA_PEERS
rust-before ../peer-rust-before FJ_ACTIVATE_VENV=1"
fi
export PEERS=${PEERS:-$default}
exec "$here/peers/run.sh" "$@"
