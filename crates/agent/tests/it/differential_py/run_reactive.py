"""Runs engine-trace specs through charms.reactive 1.5.3 itself.

    python run_reactive.py SPECS.json   # a JSON list of specs -> a JSON list of traces

Each spec gets a fresh handler registry and a fresh unit-state database. The
handlers are registered in spec order, as functions of one generated module,
with the library's own decorators (@hook, @when_all, @when_any, @when_not,
@when_not_all) and register_trigger; then the spec's flags are set (triggers
fire), and bus.dispatch() runs. A trace is {"invoked": [...], "flags": [...]},
or {"capped": true, ...} when the loop reached charms.reactive's silent cap of
100 iterations (the Rust engine reports those as an error instead).

A handler with no conditions at all is registered as @when_not(NEVER), a flag
nobody sets: charms.reactive tests a handler with no registered flags in every
iteration (it would run 100 times), while one watching a flag that never
changes runs once, in the first pass, which is what the Rust engine does.
"""
import json
import os
import sys
import tempfile

import charmhelpers.osplatform as _osplatform

# charmhelpers refuses to import on Debian (it only knows "Ubuntu"/"CentOS");
# nothing below depends on the platform.
_osplatform.get_platform = lambda: "ubuntu"

from charmhelpers.core import unitdata  # noqa: E402
from charms.reactive import bus, flags as rflags  # noqa: E402
from charms.reactive import decorators  # noqa: E402

NEVER = "__engine_trace.never__"


def run(spec, workdir, n):
    os.environ["JUJU_HOOK_NAME"] = spec["hook"]
    os.environ["UNIT_STATE_DB"] = os.path.join(workdir, "state-%d.db" % n)
    unitdata._KV = None
    bus.Handler.clear()

    invoked = []
    iterations = []
    real_iteration = bus.FlagWatch.iteration.__func__

    def iteration(cls, i):
        iterations.append(i)
        real_iteration(cls, i)

    bus.FlagWatch.iteration = classmethod(iteration)

    for t in spec.get("triggers", []):
        when, when_not = t.get("when"), t.get("when_not")
        for f in t.get("set", []):
            rflags.register_trigger(when=when, when_not=when_not, set_flag=f)
        for f in t.get("clear", []):
            rflags.register_trigger(when=when, when_not=when_not, clear_flag=f)

    # One function per handler, each at its own line: charms.reactive keys
    # handlers by file, line and name.
    handlers = spec.get("handlers", [])
    source = "".join("def h%d(*args):\n    act(%d)\n" % (i, i) for i in range(len(handlers)))
    namespace = {}

    def act(i):
        h = handlers[i]
        invoked.append(h["name"])
        for f in h.get("set", []):
            rflags.set_flag(f)
        for f in h.get("clear", []):
            rflags.clear_flag(f)

    namespace["act"] = act
    exec(compile(source, "<spec %d>" % n, "exec"), namespace)
    for i, h in enumerate(handlers):
        fn = namespace["h%d" % i]
        conditions = [
            (decorators.when_all, h.get("when_all", [])),
            (decorators.when_any, h.get("when_any", [])),
            (decorators.when_not, h.get("when_not", [])),
            (decorators.when_not_all, h.get("when_not_all", [])),
        ]
        if h.get("hooks"):
            decorators.hook(*h["hooks"])(fn)
        for decorator, flag_list in conditions:
            if flag_list:
                decorator(*flag_list)(fn)
        if not h.get("hooks") and not any(fl for _, fl in conditions):
            decorators.when_not(NEVER)(fn)

    for f in spec.get("flags", []):
        rflags.set_flag(f)
    bus.dispatch()
    bus.FlagWatch.iteration = classmethod(real_iteration)
    trace = {"invoked": invoked, "flags": sorted(rflags.get_flags())}
    if iterations and iterations[-1] == 99:
        trace["capped"] = True
    return trace


def main():
    with open(sys.argv[1]) as f:
        specs = json.load(f)
    with tempfile.TemporaryDirectory() as workdir:
        os.environ["CHARM_DIR"] = workdir
        out = [run(spec, workdir, n) for n, spec in enumerate(specs)]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
