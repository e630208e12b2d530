#!/usr/bin/env bash
# Deploy benchmark (issue 7): time from `jujulet deploy` to the first healthy
# HTTP 200 of examples/hello in an nspawn machine, with uv and with pip, and
# from `jujulet config` to the app serving the new value.
#   bench/deploy-time.sh [RUNS]      (default 3; as root; builds release binaries)
# uv is put on PATH (/usr/local/bin/uv, seen inside the machine, which
# overlays the host's /) for the uv runs only, and removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUNS=${1:-3}
PORT=18200
CACHE=${WSGI_CHARM_CACHE:-/var/cache/wsgi-charm}
WORK=$(mktemp -d /tmp/wsgi-deploy-bench.XXXXXX)
MODEL=$WORK/model
log() { printf '[deploy-bench] %s\n' "$*" >&2; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

scripts/pack target/wsgi.charm
cargo build --quiet --release -p jujulet
J() { "$ROOT/target/release/jujulet" --model "$MODEL" "$@"; }

if [ ! -x "$CACHE/venvs/uv/bin/uv" ]; then
  log "installing uv into $CACHE/venvs/uv"
  /usr/bin/python3 -m venv "$CACHE/venvs/uv"
  "$CACHE/venvs/uv/bin/pip" install -q uv==0.13.9
fi
had_uv=0; [ -e /usr/local/bin/uv ] && had_uv=1
cleanup() {
  J destroy >/dev/null 2>&1 || true
  if ((had_uv == 0)); then rm -f /usr/local/bin/uv; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

tar czf "$WORK/hello.tar.gz" -C examples/hello .

wait_for() { # wait_for PATH EXPECTED → ms until the body equals EXPECTED
  local t0=$1 path=$2 want=$3
  for _ in $(seq 1 3000); do
    if [ "$(curl -s -m 1 "http://127.0.0.1:$PORT$path" || true)" = "$want" ]; then
      echo $(( $(now_ms) - t0 )); return
    fi
    sleep 0.01
  done
  echo "timeout"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A results
for installer in pip uv; do
  if [ $installer = uv ]; then ln -sfn "$CACHE/venvs/uv/bin/uv" /usr/local/bin/uv; else ((had_uv)) || rm -f /usr/local/bin/uv; fi
  for run in $(seq 1 "$RUNS"); do
    J destroy >/dev/null 2>&1 || true
    rm -rf "$MODEL"
    # A cold venv each run (the machine is new); pip's and uv's download
    # caches on the host are not shared into the machine's tmpfs.
    t0=$(now_ms)
    ( wait_for "$t0" / "Hello, World!" >"$WORK/first200" ) &
    poll=$!
    J deploy "$ROOT/target/wsgi.charm" --resource app="$WORK/hello.tar.gz" \
      --name hello --config port=$PORT >/dev/null 2>"$WORK/deploy.log" || { cat "$WORK/deploy.log" >&2; exit 1; }
    deploy_ms=$(( $(now_ms) - t0 ))
    wait $poll
    first=$(cat "$WORK/first200")
    t1=$(now_ms)
    J config "environment_variables=GREETING=run$run" >/dev/null 2>&1
    cfg_hook=$(( $(now_ms) - t1 ))
    cfg_live=$(wait_for "$t1" / "Hello, run$run!")
    log "$installer run $run: deploy command ${deploy_ms} ms, first 200 at ${first} ms; config hook ${cfg_hook} ms, new value served at ${cfg_live} ms"
    results[$installer,deploy]+="$deploy_ms "
    results[$installer,first]+="$first "
    results[$installer,cfg]+="$cfg_live "
  done
done

echo
echo "| installer | deploy → first HTTP 200 (median ms) | jujulet deploy command (median ms) | config-changed → new value served (median ms) | runs |"
echo "|---|---:|---:|---:|---:|"
for installer in pip uv; do
  f=$(tr ' ' '\n' <<<"${results[$installer,first]}" | grep . | median)
  d=$(tr ' ' '\n' <<<"${results[$installer,deploy]}" | grep . | median)
  c=$(tr ' ' '\n' <<<"${results[$installer,cfg]}" | grep . | median)
  echo "| $installer | $f | $d | $c | $RUNS |"
done
