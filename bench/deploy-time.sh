#!/usr/bin/env bash
# Deploy benchmark (issues 7 and 15): time from `jujulet deploy` to the first
# healthy HTTP 200 of examples/hello in a new nspawn machine, and from
# `jujulet config` to the app serving the new value; each variant in the same
# run, side by side (the machines are shared and noisy).
#   bench/deploy-time.sh [RUNS]      (default 3; as root; builds release binaries)
#   BEFORE=path/to/old.charm ...     also the charm of an earlier commit, with
#                                    pip and with a uv on PATH (its two modes)
# Variants:
#   charm-uv          this charm: its own uv (bin/uv), no pip or python3-venv used
#   charm-uv-bare     the same on a machine whose python3-venv and python3-pip
#                     were purged first: deploy without the resource, purge,
#                     attach; reported as deploy + attach → first 200
#   charm-uv-cloud    this charm on a cloud-image machine (minimal Debian 12
#                     from debootstrap, cached; built before the first run)
#   before-pip/-uv    BEFORE's charm, pip (python3-venv from apt) / a uv on PATH
#   before-pip-cloud  BEFORE's charm on the cloud image (it apt-installs
#                     python3-venv first)
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
. scripts/lib/uv.pin
variants="charm-uv charm-uv-cloud charm-uv-bare"
if [ -n "${BEFORE:-}" ]; then
  variants="before-pip before-uv before-pip-cloud $variants"
  if [ ! -x "$CACHE/venvs/uv/bin/uv" ]; then
    log "installing uv $version into $CACHE/venvs/uv (for before-uv)"
    /usr/bin/python3 -m venv "$CACHE/venvs/uv"
    "$CACHE/venvs/uv/bin/pip" install -q "uv==$version"
  fi
fi
had_uv=0; [ -e /usr/local/bin/uv ] && had_uv=1
cleanup() {
  J destroy >/dev/null 2>&1 || true
  if ((had_uv == 0)); then rm -f /usr/local/bin/uv; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

tar czf "$WORK/hello.tar.gz" -C examples/hello .
# The image is built once and cached: not part of any run's time.
JUJULET_MACHINE=cloud-image J deploy "$ROOT/target/wsgi.charm" --name warm >/dev/null 2>&1 || true
J destroy >/dev/null 2>&1 || true

wait_for() { # wait_for T0 PATH EXPECTED → ms from T0 until the body equals EXPECTED
  local t0=$1 path=$2 want=$3
  for _ in $(seq 1 6000); do
    if [ "$(curl -s -m 1 "http://127.0.0.1:$PORT$path" || true)" = "$want" ]; then
      echo $(( $(now_ms) - t0 )); return
    fi
    sleep 0.01
  done
  echo "timeout"
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A results
for run in $(seq 1 "$RUNS"); do
  for variant in $variants; do
    case $variant in
      before-*) charm=$BEFORE ;;
      *) charm=$ROOT/target/wsgi.charm ;;
    esac
    if [ "$variant" = before-uv ]; then
      ln -sfn "$CACHE/venvs/uv/bin/uv" /usr/local/bin/uv
    elif ((had_uv == 0)); then
      rm -f /usr/local/bin/uv
    fi
    J destroy >/dev/null 2>&1 || true
    rm -rf "$MODEL"
    # A new machine each run: a cold venv; the host's download caches are
    # not shared into the machine's tmpfs.
    machine=nspawn
    case $variant in *-cloud) machine=cloud-image ;; esac
    export JUJULET_MACHINE=$machine
    t0=$(now_ms)
    if [ "$variant" = charm-uv-bare ]; then
      J deploy "$charm" --name hello --config port=$PORT >/dev/null 2>"$WORK/deploy.log" || { cat "$WORK/deploy.log" >&2; exit 1; }
      deploy_ms=$(( $(now_ms) - t0 ))
      J exec -- sh -c 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -q python3-venv python3-pip python3.11-venv >/dev/null 2>&1; ! python3 -c "import ensurepip" 2>/dev/null' \
        || { log "python3-venv is still there"; exit 1; }
      t1=$(now_ms)
      ( wait_for "$t1" / "Hello, World!" >"$WORK/first200" ) &
      poll=$!
      J attach-resource app="$WORK/hello.tar.gz" >/dev/null 2>"$WORK/deploy.log" || { cat "$WORK/deploy.log" >&2; exit 1; }
      wait $poll
      first=$(( deploy_ms + $(cat "$WORK/first200") ))
    else
      ( wait_for "$t0" / "Hello, World!" >"$WORK/first200" ) &
      poll=$!
      J deploy "$charm" --resource app="$WORK/hello.tar.gz" \
        --name hello --config port=$PORT >/dev/null 2>"$WORK/deploy.log" || { cat "$WORK/deploy.log" >&2; exit 1; }
      deploy_ms=$(( $(now_ms) - t0 ))
      wait $poll
      first=$(cat "$WORK/first200")
    fi
    t1=$(now_ms)
    J config "environment_variables=GREETING=run$run" >/dev/null 2>&1
    cfg_live=$(wait_for "$t1" / "Hello, run$run!")
    log "$variant run $run: deploy command ${deploy_ms} ms, first 200 at ${first} ms; new value served at ${cfg_live} ms"
    results[$variant,deploy]+="$deploy_ms "
    results[$variant,first]+="$first "
    results[$variant,cfg]+="$cfg_live "
  done
done

echo
echo "| variant | deploy → first HTTP 200 (median ms) | jujulet deploy command (median ms) | config-changed → new value served (median ms) | runs |"
echo "|---|---:|---:|---:|---:|"
for variant in $variants; do
  f=$(tr ' ' '\n' <<<"${results[$variant,first]}" | grep . | median)
  d=$(tr ' ' '\n' <<<"${results[$variant,deploy]}" | grep . | median)
  c=$(tr ' ' '\n' <<<"${results[$variant,cfg]}" | grep . | median)
  echo "| $variant | $f | $d | $c | $RUNS |"
done
