#!/usr/bin/env bash
# Per-hook cost of the WSGI charm peers under a fake Juju (see README.md).
#
#   ./run.sh                 set up everything from scratch and measure
#   PEERS="ops" ./run.sh     only some peers (names from the table below)
#   RUNS=20 ./run.sh         more timed runs per cell (default 15)
#
# Everything is built under a fresh $BENCH_TMP/peers-bench.XXXXXX
# (BENCH_TMP defaults to $HOME/tmp); the markdown report is printed and
# saved there as results.md (and copied to $OUT when set).
set -euo pipefail

KIT=$(cd "$(dirname "$0")" && pwd)
FJ=$KIT/fake-juju/fj
RUNS=${RUNS:-15}          # timed runs per cell (hyperfine)
WARMUP=${WARMUP:-2}       # untimed runs before them
RSS_RUNS=${RSS_RUNS:-5}   # runs under GNU time (peak RSS, call counts, effects)
OUT=${OUT:-}
# The machine may be shared: run the measured commands at a higher CPU
# priority when we may (root); NICE=0 to turn that off.
if [ "$(id -u)" = 0 ]; then NICE=${NICE:--10}; else NICE=${NICE:-0}; fi

# name  peer directory  hook environment
PEER_TABLE="noop peer-noop FJ_ACTIVATE_VENV=1
reactive peer-reactive FJ_ACTIVATE_VENV=1
ops peer-ops FJ_ACTIVATE_VENV=1
reactive+basic peer-reactive FJ_ACTIVATE_VENV=0
${EXTRA_PEERS:-}"
PEERS=${PEERS:-"noop reactive ops reactive+basic"}

# Scenario: name|hook|relation endpoint|remote units in the relation
SCENARIOS="update-status|update-status|-|-
config-changed|config-changed|-|-
postgres-relation-changed|postgres-relation-changed|postgres|1
website-relation-joined-1|website-relation-joined|website|1
website-relation-joined-10|website-relation-joined|website|10
website-relation-joined-100|website-relation-joined|website|100"

log() { printf '[run.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------ tools
# The distro's python3 (what a Juju machine runs hooks with), not a shim.
PYTHON=${PYTHON:-$(PATH=/usr/bin:/bin command -v python3 || command -v python3)}
export PYTHON
missing=
command -v hyperfine >/dev/null || missing="$missing hyperfine"
[ -z "${REPLAY_PEERS-rust}" ] || command -v strace >/dev/null || missing="$missing strace"
[ -x /usr/bin/time ] || missing="$missing time"
"$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || missing="$missing python3-venv"
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing from Debian:$missing"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
    else
        echo "run.sh: please install:$missing" >&2
        exit 1
    fi
fi

BENCH_TMP=${BENCH_TMP:-$HOME/tmp}
mkdir -p "$BENCH_TMP"
WORK=$(mktemp -d "$BENCH_TMP/peers-bench.XXXXXX")
RUN=$WORK/run          # every hook runs here, so every path is the same
SNAP=$WORK/snap
mkdir -p "$SNAP" "$WORK/hf" "$WORK/rss" "$WORK/effects" "$WORK/semantic"
log "work dir: $WORK"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
T0=$(date +%s)

# ------------------------------------------------------------------ helpers
peer_field() { # peer_field NAME COLUMN(2|3)
    printf '%s\n' "$PEER_TABLE" | awk -v n="$1" -v c="$2" '$1 == n { print $c; exit }'
}

S() { printf '%s' "$RUN/state"; }

hook() { # hook HOOK [REL [REMOTE_UNIT]] -- run during setup, must succeed
    if ! env "$HOOK_ENV" "$FJ" hook "$(S)" "$RUN/charm" "$@" </dev/null >>"$WORK/setup.log" 2>&1; then
        echo "run.sh: setup hook $* failed for peer $PEER; see $WORK/setup.log" >&2
        tail -30 "$WORK/setup.log" >&2
        exit 1
    fi
}

snapshot() { # the call log and juju log start empty for the measured hook
    rm -rf "$SNAP/$PEER/$1"
    mkdir -p "$SNAP/$PEER"
    cp -a "$RUN" "$SNAP/$PEER/$1"
    : >"$SNAP/$PEER/$1/state/calls.log"
    : >"$SNAP/$PEER/$1/state/juju.log"
}
restore() { "$FJ" restore "$SNAP/$PEER/$1" "$RUN"; }

rel_of() { # rel_of ENDPOINT -> ENDPOINT:ID of the first such relation
    local d ep
    for d in "$(S)"/relations/*; do
        read -r ep <"$d/endpoint"
        [ "$ep" = "$1" ] && { printf '%s:%s' "$ep" "${d##*/}"; return; }
    done
    return 1
}

write_app_source() { # the application the charm deploys (config source=/opt/app-src)
    local src=$(S)/root/opt/app-src
    mkdir -p "$src"
    cat >"$src/wsgi.py" <<'EOF'
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello from the benchmark app\n']
EOF
    printf 'Flask==3.0.3\n' >"$src/requirements.txt"
    # the same app as the Juju resource `app` (a tar archive), for charms that
    # take it from `resource-get app` (the Rust agent); fake-juju's
    # resource-get prints STATE/resources/NAME/<file>
    mkdir -p "$(S)/resources/app"
    tar -C "$src" -cf "$(S)/resources/app/app.tar" wsgi.py requirements.txt
}

write_config() {
    cat >"$WORK/config.json" <<'EOF'
{"source": "/opt/app-src", "port": 80, "wsgi_module": "wsgi:application",
 "environment_variables": "APP_ENV=production LOG_LEVEL=info",
 "apt_dependencies": "", "pip_cache_dir": "", "workers": 2,
 "wsgi_logfile_path": "/var/log/wsgi.service.log"}
EOF
}

# Build the snapshots every scenario starts from.  A snapshot is the whole
# unit dir ($RUN: charm dir with its state, fake Juju state, sandbox) just
# before the measured hook: what changed in Juju (config, remote data, a
# joining unit) is already in the fake state, the charm has not seen it.
build_snapshots() {
    local pg web n i
    rm -rf "$RUN"
    "$KIT/$PEER_DIR/setup.sh" "$WORK" "$RUN" >>"$WORK/setup.log" 2>&1
    "$FJ" init "$(S)" wsgi-app/0 10.1.0.10
    write_app_source
    # a peer whose options differ (the Rust agent: no `source`) leaves its
    # own config.json in the unit dir
    if [ -f "$RUN/config.json" ]; then "$FJ" config "$(S)" "$RUN/config.json"
    else "$FJ" config "$(S)" "$WORK/config.json"; fi
    hook install
    hook leader-elected
    hook config-changed
    hook start
    pg=$("$FJ" relate "$(S)" postgres postgresql)
    hook postgres-relation-created "$pg"
    "$FJ" add-unit "$(S)" "$pg" postgresql/0
    hook postgres-relation-joined "$pg" postgresql/0
    hook postgres-relation-changed "$pg" postgresql/0
    # the database answers: this is what postgres-relation-changed sees
    "$FJ" set "$(S)" "$pg" postgresql/0 host=10.5.0.2 port=5432 user=wsgi-app \
        password=s3cr3t-pw database=wsgi-app state=master version=14 \
        "master=dbname=wsgi-app host=10.5.0.2 port=5432 user=wsgi-app password=s3cr3t-pw" \
        allowed-units=wsgi-app/0
    snapshot postgres-relation-changed
    hook postgres-relation-changed "$pg" postgresql/0
    snapshot base   # configured, with its database, no website relation yet

    # website relation with N units: the units before the last one have
    # joined and been seen; the last one is joining now.
    for n in 1 10 100; do
        restore base
        web=$("$FJ" relate "$(S)" website haproxy)
        hook website-relation-created "$web"
        i=0
        while [ $i -lt $((n - 1)) ]; do
            "$FJ" add-unit "$(S)" "$web" "haproxy/$i"
            i=$((i + 1))
        done
        if [ $n -gt 1 ]; then
            hook website-relation-joined "$web" "haproxy/$((n - 2))"
            hook website-relation-changed "$web" "haproxy/$((n - 2))"
        fi
        "$FJ" add-unit "$(S)" "$web" "haproxy/$((n - 1))"
        snapshot "website-relation-joined-$n"
    done

    # steady state: database and one website unit, all seen
    restore website-relation-joined-1
    web=$(rel_of website)
    hook website-relation-joined "$web" haproxy/0
    hook website-relation-changed "$web" haproxy/0
    snapshot update-status
    # the operator changes an environment variable
    "$FJ" config-set "$(S)" environment_variables '"APP_ENV=production LOG_LEVEL=debug"'
    snapshot config-changed
}

count_restarts() { # systemctl restart lines in a state's sandbox
    if [ -f "$1/root/commands.log" ]; then grep -c 'systemctl restart' "$1/root/commands.log" || true
    else echo 0; fi
}

effects() { # effects STATE SNAPSHOT-STATE: what the hook did, as text
    local d ep f n=0
    if [ -f "$1/status/unit" ]; then echo "status: $(tr '\n' ' ' <"$1/status/unit")"; else echo "status: none"; fi
    echo "ports: $(ls "$1/ports" | tr '\n' ' ')"
    for d in "$1"/relations/*; do
        [ -d "$d/data/wsgi-app.0" ] || continue
        read -r ep <"$d/endpoint"
        for f in "$d"/data/wsgi-app.0/*; do echo "relation $ep:${d##*/} ${f##*/}=$(cat "$f")"; done
    done
    echo "--- unit file"
    if [ -f "$1/root/etc/systemd/system/gunicorn3.service" ]; then
        cat "$1/root/etc/systemd/system/gunicorn3.service"
        echo
    else
        ls "$1/root/etc/systemd/system" 2>/dev/null || echo "(none)"
    fi
    echo "--- privileged commands run by this hook"
    [ -f "$2/root/commands.log" ] && n=$(wc -l <"$2/root/commands.log")
    if [ -f "$1/root/commands.log" ]; then tail -n +$((n + 1)) "$1/root/commands.log"; fi
}

hook_args() { # hook_args SCENARIO-LINE -> $HARGS (after the charm dir)
    local name hook ep units rel
    IFS='|' read -r name hook ep units <<<"$1"
    HARGS="$hook"
    if [ "$ep" != - ]; then
        rel=$(cd "$SNAP/$PEER/$name/state/relations" && for d in *; do
            read -r e <"$d/endpoint"; [ "$e" = "$ep" ] && { echo "$ep:$d"; break; }; done)
        HARGS="$HARGS $rel $(tail -n 1 "$SNAP/$PEER/$name/state/relations/${rel##*:}/units")"
    fi
}

measure() { # measure SCENARIO-LINE
    local name rest out i
    name=${1%%|*}
    hook_args "$1"
    # peak RSS, tool calls and effects: a few runs under GNU time
    out=$WORK/rss/$PEER.$name
    : >"$out"
    for i in $(seq "$RSS_RUNS"); do
        restore "$name"
        if ! nice -n "$NICE" /usr/bin/time -f '%e %M %U %S' -o "$out.t" env "$HOOK_ENV" "$FJ" hook "$(S)" "$RUN/charm" $HARGS \
            </dev/null >"$out.log" 2>&1; then
            echo "run.sh: $PEER $name failed; output:" >&2
            tail -30 "$out.log" >&2
            exit 1
        fi
        printf 'time %s\n' "$(tail -n 1 "$out.t")" >>"$out"
    done
    printf 'calls %s\n' "$("$FJ" calls "$(S)")" >>"$out"
    printf 'status %s\n' "$(head -n 1 "$(S)/status/unit" 2>/dev/null || echo unknown)" >>"$out"
    printf 'restarts %s\n' $(($(count_restarts "$(S)") - $(count_restarts "$SNAP/$PEER/$name/state"))) >>"$out"
    cp "$(S)/calls.log" "$WORK/rss/$PEER.$name.calls.log"
    effects "$(S)" "$SNAP/$PEER/$name/state" >"$WORK/effects/$PEER.$name"
    "$PYTHON" "$KIT/semantic.py" "$(S)" "$SNAP/$PEER/$name/state" >"$WORK/semantic/$PEER.$name.json"
    # wall time: hyperfine, state restored before every run (not timed)
    nice -n "$NICE" hyperfine -N --style none --warmup "$WARMUP" --runs "$RUNS" \
        --prepare "$FJ restore $SNAP/$PEER/$name $RUN" \
        --export-json "$WORK/hf/$PEER.$name.json" \
        "env $HOOK_ENV $FJ hook $(S) $RUN/charm $HARGS" </dev/null >/dev/null
    case " $REPLAY_PEERS " in *" $PEER "*) replay "$name" ;; esac
}

# The peer's own time: trace one run of the hook (untimed) for the hook-tool
# calls it makes, then time a dispatch that makes just those calls (same
# harness, same state); hook − replay = the charm's own time.
REPLAY_PEERS=${REPLAY_PEERS-rust}
replay() { # replay SCENARIO-NAME (after measure: $HARGS set)
    local name=$1 rd=$WORK/replay/$PEER.$1
    mkdir -p "$rd/charm"
    restore "$name"
    strace -f -qq -e trace=execve -s 100000 -o "$rd/strace" \
        env "$HOOK_ENV" "$FJ" hook "$(S)" "$RUN/charm" $HARGS </dev/null >/dev/null 2>&1 || true
    "$PYTHON" "$KIT/replay.py" "$KIT/fake-juju/bin" <"$rd/strace" >"$rd/charm/dispatch"
    chmod +x "$rd/charm/dispatch"
    nice -n "$NICE" hyperfine -N --style none --warmup "$WARMUP" --runs "$RUNS" \
        --prepare "$FJ restore $SNAP/$PEER/$name $RUN" \
        --export-json "$WORK/hf/$PEER.$name.replay.json" \
        "env $HOOK_ENV $FJ hook $(S) $rd/charm $HARGS" </dev/null >/dev/null
}

# ------------------------------------------------------------------ run
write_config
peer_vars() {
    PEER_DIR=$(peer_field "$PEER" 2)
    HOOK_ENV=$(peer_field "$PEER" 3)
    [ -n "$PEER_DIR" ] || { echo "run.sh: unknown peer $PEER" >&2; exit 1; }
}
for PEER in $PEERS; do
    peer_vars
    log "$PEER: setting up ($PEER_DIR, $HOOK_ENV) and building the scenario snapshots"
    build_snapshots
done
# scenario by scenario, every peer in turn: cells to be compared are
# measured close together in time (the machine may be shared)
while IFS= read -r line; do
    [ -n "$line" ] || continue
    for PEER in $PEERS; do
        peer_vars
        log "$PEER: measuring ${line%%|*}"
        measure "$line"
    done
done <<<"$SCENARIOS"

# fake hook tools alone: what one call costs here
log "measuring single fake hook-tool calls"
restore_one=$(printf '%s\n' $PEERS | head -n 1)
PEER=$restore_one
restore update-status
(
    export FAKE_JUJU_STATE=$RUN/state JUJU_UNIT_NAME=wsgi-app/0
    B=$KIT/fake-juju/bin
    pg=$(rel_of postgres)
    nice -n "$NICE" hyperfine -N --style none --warmup 5 --runs 50 --export-json "$WORK/hf/tools.json" \
        "$B/juju-log -l INFO hello" \
        "$B/config-get --all --format=json" \
        "$B/relation-get --format=json -r $pg - postgresql/0" \
        "$B/relation-list --format=json -r $pg" >/dev/null
)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
T1=$(date +%s)

# ------------------------------------------------------------------ report
{
    echo "# Per-hook cost of the WSGI charm peers (fake Juju)"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); run time: $((T1 - T0)) s; runs per cell: $RUNS timed (+$WARMUP warm-up), $RSS_RUNS under GNU time; measured commands at nice $NICE"
    echo "- machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "- load average (1/5/15 min): $LOAD_START at start, $LOAD_END at end; work dir on $(df -PT "$WORK" | awk 'NR == 2 { print $2 }')"
    echo "- python: $("$PYTHON" -c 'import sys; print(sys.version.split()[0])') ($PYTHON); hyperfine $(hyperfine --version | awk '{ print $2 }'); awk: $(awk -W version 2>&1 | head -n 1)"
    if [ -f "$WORK/wsgi-agent-before.info" ]; then
        echo "- rust-before agent: $(cat "$WORK/wsgi-agent-before.info")"
    fi
    if [ -f "$WORK/wsgi-agent.info" ]; then
        echo "- rust agent: $(cat "$WORK/wsgi-agent.info")"
    fi
    for v in "$WORK"/venv-*; do
        [ -d "$v" ] || continue
        echo "- ${v##*/venv-} venv: $("$v/bin/python" -m pip list --format=freeze --disable-pip-version-check 2>/dev/null | grep -v -e '^pip==' | tr '\n' ' ')"
    done
    echo
    "$PYTHON" - "$WORK" "$PEERS" <<'EOF'
import json, os, statistics, sys
work, peers = sys.argv[1], sys.argv[2].split()
scen = ['update-status', 'config-changed', 'postgres-relation-changed',
        'website-relation-joined-1', 'website-relation-joined-10', 'website-relation-joined-100']
print('| peer | hook | remote units | wall median ms | wall min ms | CPU user+sys ms (mean) | peak RSS MiB | hook-tool calls | restarts | status after |')
print('|---|---|---:|---:|---:|---:|---:|---:|---:|---|')
details = []
for p in peers:
    for s in scen:
        hf = os.path.join(work, 'hf', f'{p}.{s}.json')
        rs = os.path.join(work, 'rss', f'{p}.{s}')
        if not os.path.exists(hf):
            continue
        res = json.load(open(hf))['results'][0]
        times = res['times']
        info = {'time': []}
        for line in open(rs):
            k, _, v = line.rstrip('\n').partition(' ')
            if k == 'time':
                info['time'].append(v.split())
            else:
                info[k] = v
        rss = statistics.median(float(t[1]) for t in info['time']) / 1024
        cpu = (res['user'] + res['system']) * 1000
        calls = info['calls'].split()
        hook = s.rsplit('-', 1)[0] if s.startswith('website') else s
        units = s.rsplit('-', 1)[1] if s.startswith('website') else ('1' if s.startswith('postgres') else '')
        print(f'| {p} | {hook} | {units} | {statistics.median(times)*1000:.0f} | {min(times)*1000:.0f} | '
              f'{cpu:.0f} | {rss:.1f} | {calls[0]} | {info["restarts"]} | {info["status"]} |')
        details.append((p, s, ' '.join(calls[1:])))
print()
print('Hook-tool calls per hook, by tool:')
print()
print('| peer | scenario | calls by tool |')
print('|---|---|---|')
for p, s, c in details:
    print(f'| {p} | {s} | {c} |')
print()
print('Effects of each hook, byte for byte (status, opened ports, local relation data, rendered unit file,')
print('privileged commands) compared between peers:')
print()
for s in scen:
    seen = {}
    for p in peers:
        f = os.path.join(work, 'effects', f'{p}.{s}')
        if p != 'noop' and os.path.exists(f):
            seen.setdefault(open(f).read(), []).append(p)
    if len(seen) == 1:
        print(f'- {s}: identical ({", ".join(next(iter(seen.values())))})')
    elif seen:
        print(f'- {s}: DIFFERENT: ' + ' vs '.join('/'.join(v) for v in seen.values()))
# What matters, compared semantically (semantic.py): the agent renders its
# own hardened unit, so byte-identical effects are impossible by design.
sem = {}
for p in peers:
    for s in scen:
        f = os.path.join(work, 'semantic', f'{p}.{s}.json')
        if p != 'noop' and os.path.exists(f):
            sem[p, s] = json.load(open(f))
if sem:
    print()
    print('Effects compared semantically across all peers: final status, opened ports, local relation')
    print('data, service restarts (`systemctl restart`, or `reload` where a peer reloads), and the values')
    print('of DATABASE_URL and the configured variables as the service gets them (peers: Environment= in')
    print('gunicorn3.service; agent: the environment file its gunicorn.conf.py reads):')
    print()
    print('| scenario | verdict | reason / notes |')
    print('|---|---|---|')
    def fmt(v):
        return json.dumps(v, sort_keys=True, separators=(',', ':'))
    for s in scen:
        ps = [p for p in peers if (p, s) in sem]
        if not ps:
            continue
        fields = {
            'status': lambda d: d['status'],
            'ports': lambda d: d['ports'],
            'relation data': lambda d: d['relations'],
            'restarts+reloads': lambda d: d['restarts'] + d['reloads'],
            'service env': lambda d: d['env'],
        }
        diffs, notes = [], []
        for name, get in fields.items():
            groups = {}
            for p in ps:
                groups.setdefault(fmt(get(sem[p, s])), []).append(p)
            if len(groups) > 1:
                diffs.append(f'{name}: ' + ' vs '.join(f'{"/".join(v)} {k}' for k, v in groups.items()))
        kinds = {}
        for p in ps:
            d = sem[p, s]
            kinds.setdefault(f'restart {d["restarts"]}, reload {d["reloads"]}', []).append(p)
        if len(kinds) > 1:
            notes.append('how the service is told: ' + '; '.join(f'{"/".join(v)}: {k}' for k, v in kinds.items()))
        msgs = {}
        for p in ps:
            msgs.setdefault(sem[p, s]['message'], []).append(p)
        if len(msgs) > 1:
            notes.append('status messages: ' + '; '.join(f'{"/".join(v)}: "{k}"' for k, v in msgs.items()))
        d0 = sem[ps[0], s]
        notes.append(f'all: status {d0["status"]}, ports {" ".join(d0["ports"]) or "-"}, '
                     + ', '.join(f'{k}={v}' for k, v in d0['env'].items()))
        verdict = 'identical' if not diffs else '**DIFFERENT**'
        print(f'| {s} | {verdict} ({", ".join(ps)}) | ' + '; '.join(diffs + notes).replace('|', '\\|') + ' |')
# The targets of wsgi-charm issue 7, when the agent ran (peer "rust").
def cell(p, s):
    hf = os.path.join(work, 'hf', f'{p}.{s}.json')
    rs = os.path.join(work, 'rss', f'{p}.{s}')
    if not os.path.exists(hf):
        return None
    res = json.load(open(hf))['results'][0]
    info = {'time': []}
    for line in open(rs):
        k, _, v = line.rstrip('\n').partition(' ')
        if k == 'time':
            info['time'].append(v.split())
        else:
            info[k] = v
    return {'med': statistics.median(res['times']) * 1000, 'min': min(res['times']) * 1000,
            'cpu': (res['user'] + res['system']) * 1000,
            'rss': statistics.median(float(t[1]) for t in info['time']) / 1024,
            'calls': int(info['calls'].split()[0])}
own = {}
for p in peers:
    for s in scen:
        f = os.path.join(work, 'hf', f'{p}.{s}.replay.json')
        c = cell(p, s)
        if os.path.exists(f) and c:
            r = json.load(open(f))['results'][0]
            own[p, s] = {'med': c['med'] - statistics.median(r['times']) * 1000,
                         'min': c['min'] - min(r['times']) * 1000,
                         'cpu': c['cpu'] - (r['user'] + r['system']) * 1000,
                         'rmed': statistics.median(r['times']) * 1000, 'calls': c['calls']}
if own:
    print()
    print("A peer's own time: the hook minus a replay of its hook-tool calls (same harness, same")
    print('state, same calls and arguments, recorded with strace from one run; replay.py):')
    print()
    print('| peer | scenario | hook wall median ms | replay of its calls, wall median ms | own time, median ms | own time, min-based ms | own CPU ms |')
    print('|---|---|---:|---:|---:|---:|---:|')
    for (p, s), o in own.items():
        print(f'| {p} | {s} | {cell(p, s)["med"]:.1f} | {o["rmed"]:.1f} ({o["calls"]} calls) | {o["med"]:.1f} | {o["min"]:.1f} | {o["cpu"]:.1f} |')
if 'rust' in peers:
    print()
    print('Targets (issue 7), from this run:')
    print()
    print('| target | measured | verdict |')
    print('|---|---|---|')
    def row(t, m, ok):
        print(f'| {t} | {m} | {"(for reference)" if ok is None else "met" if ok else "**MISSED**"} |')
    r, fl = cell('rust', 'update-status'), cell('noop', 'update-status')
    for peer, want in (('ops', 30), ('reactive+basic', 50)):
        o = cell(peer, 'update-status')
        if r and o:
            row(f'update-status wall median ≤ 1/{want} of {peer}',
                f'{r["med"]:.1f} ms vs {o["med"]:.0f} ms = 1/{o["med"] / r["med"]:.1f} '
                f'(min: 1/{o["min"] / r["min"]:.1f}; CPU: 1/{o["cpu"] / r["cpu"]:.1f}'
                + (f'; both minus the harness floor (noop {fl["med"]:.1f} ms): '
                   f'1/{(o["med"] - fl["med"]) / (r["med"] - fl["med"]):.1f}' if fl else '') + ')',
                o['med'] / r['med'] >= want)
    if r:
        row('update-status ≤ 3 hook-tool calls', f'{r["calls"]}', r['calls'] <= 3)
    for s in scen:
        r = cell('rust', s)
        py = [(cell(p, s), p) for p in peers if p in ('ops', 'reactive', 'reactive+basic')]
        py = [(c, p) for c, p in py if c]
        if r and py:
            c, p = min(py, key=lambda x: x[0]['rss'])
            row(f'{s}: peak RSS ≤ 1/8 of the lightest Python peer',
                f'{r["rss"]:.1f} MiB vs {p} {c["rss"]:.1f} MiB = 1/{c["rss"] / r["rss"]:.1f}',
                c['rss'] / r['rss'] >= 8)
    r1, r100 = cell('rust', 'website-relation-joined-1'), cell('rust', 'website-relation-joined-100')
    if r1 and r100:
        row('website-relation-joined, 100 units: ≤ 10 calls, no more than at 1 unit + a constant',
            f'{r100["calls"]} calls at 100 units, {r1["calls"]} at 1', r100['calls'] <= 10)
    r, n = cell('rust', 'config-changed'), cell('noop', 'config-changed')
    o = own.get(('rust', 'config-changed'))
    if o:
        row('config-changed (restart sandboxed): agent\'s own time < 20 ms',
            f'{o["med"]:.1f} ms = hook wall median {r["med"]:.1f} − replay of its {r["calls"]} tool calls {o["rmed"]:.1f} '
            f'(min-based {o["min"]:.1f} ms; own CPU {o["cpu"]:.1f} ms)', o['med'] < 20)
    if r and n:
        whole = r['med'] - n['med']
        row('config-changed, whole hook minus the harness floor (tool calls included)',
            f'{whole:.1f} ms = hook wall median {r["med"]:.1f} − harness floor (noop) {n["med"]:.1f} '
            f'(min-based {r["min"] - n["min"]:.1f} ms; CPU {r["cpu"] - n["cpu"]:.1f} ms; '
            f'includes its {r["calls"]} fake hook-tool calls)', None)
tools = os.path.join(work, 'hf', 'tools.json')
if os.path.exists(tools):
    print()
    print('One fake hook-tool call on its own (hyperfine, 50 runs):')
    print()
    print('| command | median ms | mean ms |')
    print('|---|---:|---:|')
    for r in json.load(open(tools))['results']:
        cmd = r['command'].split('/bin/', 1)[-1]
        print(f'| `{cmd}` | {r["median"]*1000:.1f} | {r["mean"]*1000:.1f} |')
EOF
} >"$WORK/results.md"
cat "$WORK/results.md"
[ -n "$OUT" ] && cp "$WORK/results.md" "$OUT"
log "done in $((T1 - T0)) s; raw data in $WORK"
