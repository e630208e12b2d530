#!/bin/sh
# setup.sh WORK UNIT: an earlier build of the Rust agent, as the peer
# `rust-before` beside `rust` in one run (bench/run.sh with
# BEFORE_AGENT_BIN=path/to/its/wsgi-agent, e.g. a release build of an
# earlier commit). Everything but the binary is this tree's (peer-rust).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ -z "${BEFORE_AGENT_BIN:-}" ]; then
    echo "peer-rust-before: set BEFORE_AGENT_BIN to the earlier wsgi-agent" >&2
    exit 1
fi
AGENT_BIN=$BEFORE_AGENT_BIN AGENT_NAME=wsgi-agent-before exec "$here/../peer-rust/setup.sh" "$@"
