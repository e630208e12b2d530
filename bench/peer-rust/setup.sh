#!/bin/sh
# setup.sh WORK UNIT: the Rust agent (wsgi-agent) as a peer of the benchmark kit
# (bench/peers, a copy of shared/bench-peers; README "Adding the Rust agent").
#   WORK: scratch dir of the run; the release binary is copied there once.
#   UNIT: unit dir to fill; the charm goes to UNIT/charm: the repo's
#         metadata.yaml, config.yaml, layer.yaml and dispatch, with the
#         agent at bin/wsgi-agent as scripts/pack lays it out.
# The build is cargo's (cached in CARGO_TARGET_DIR, default /work/tgt/bench):
#   cargo build --release -p agent --bin wsgi-agent-sandbox: the charm's
#   handlers, the same code as wsgi-agent, on a host confined to SANDBOX_ROOT
#   (the kit's contract); installed as bin/wsgi-agent, where dispatch looks.
#   The database check helper is not needed: the sandbox checks no database.
# AGENT_BIN=/path/to/wsgi-agent skips the build; AGENT_NAME names the copy
# in WORK (bench/peer-rust-before runs an earlier build beside this one).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=$1 unit=$2
name=${AGENT_NAME:-wsgi-agent}
bin=$work/$name
if [ ! -x "$bin" ]; then
    if [ -z "${AGENT_BIN:-}" ]; then
        export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/tgt/bench}
        (cd "$repo" && cargo build --quiet --release -p agent --bin wsgi-agent-sandbox)
        AGENT_BIN=$CARGO_TARGET_DIR/release/wsgi-agent-sandbox
        built=1
    fi
    cp "$AGENT_BIN" "$bin"
    sum=$(sha256sum "$bin" | cut -c1-12)
    if [ -n "${built:-}" ]; then
        rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
        dirty=$(git -C "$repo" status --porcelain -- crates Cargo.lock 2>/dev/null | wc -l)
        from="built from commit $rev with $dirty uncommitted files under crates/"
    else
        from="given as AGENT_BIN=$AGENT_BIN"
    fi
    echo "$("$bin" --version), release build, $(stat -c %s "$bin") bytes, sha256 $sum..., $from" >"$work/$name.info"
fi
mkdir -p "$unit"
rm -rf "$unit/charm"
mkdir -p "$unit/charm/bin"
cp "$repo/metadata.yaml" "$repo/config.yaml" "$repo/layer.yaml" "$repo/dispatch" "$unit/charm/"
chmod +x "$unit/charm/dispatch"
cp "$bin" "$unit/charm/bin/wsgi-agent"
# the config the harness sets for this peer (the repo's option names; the
# app comes from the `app` resource, not from a `source` option)
cat >"$unit/config.json" <<'JSON'
{"port": 80, "wsgi_module": "wsgi:application",
 "environment_variables": "APP_ENV=production LOG_LEVEL=info",
 "apt_dependencies": "", "pip_cache_dir": "", "workers": 2,
 "wsgi_logfile_path": "/var/log/wsgi.service.log"}
JSON
