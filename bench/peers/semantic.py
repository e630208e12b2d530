#!/usr/bin/env python3
"""semantic.py STATE SNAPSHOT-STATE: what a hook did that matters, as JSON.

Added for the Rust agent (wsgi-charm bench/). The Python peers render the
same gunicorn3.service byte for byte; the agent renders a hardened
wsgi-<app>.service whose environment lives in a 0640 file read by its
gunicorn.conf.py, so the byte-level effects cannot match. This extracts,
from the unit's state after the hook (STATE) and before it (SNAPSHOT-STATE):

  status     final unit status (state) and message
  ports      opened ports
  relations  local unit's relation data, per endpoint
  restarts   `systemctl restart` recorded in the sandbox by this hook
  reloads    `systemctl reload` recorded by this hook
  env        the service's environment as the service would see it:
             Environment= lines, EnvironmentFile= files, and the file a
             gunicorn --config file names as ENV_FILE (the agent's way)
  watched    the names that must reach the service: DATABASE_URL and the
             names in the environment_variables option
"""
import glob
import json
import os
import re
import shlex
import sys

state, before = sys.argv[1], sys.argv[2]
root = os.path.join(state, 'root')


def read(path, default=''):
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except OSError:
        return default


def sandboxed(path):
    return os.path.join(root, path.lstrip('/'))


def env_file(path, into):
    """KEY=VALUE lines, shell quoting, # comments (systemd EnvironmentFile and
    the agent's environment file both parse this way)."""
    for line in read(path).splitlines():
        line = line.strip()
        if not line or line.startswith('#') or '=' not in line:
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        for w in words:
            k, _, v = w.partition('=')
            into[k] = v


def unit_env(unit_path):
    env = {}
    for line in read(unit_path).splitlines():
        key, _, value = line.partition('=')
        key = key.strip()
        if key == 'Environment':
            for w in shlex.split(value):
                k, _, v = w.partition('=')
                env[k] = v
        elif key == 'EnvironmentFile':
            env_file(sandboxed(value.lstrip('-')), env)
        elif key == 'ExecStart':
            m = re.search(r'(?:--config|-c)[ =](\S+)', value)
            if m:
                conf = read(sandboxed(m.group(1)))
                f = re.search(r'''^ENV_FILE\s*=\s*["']([^"']+)["']''', conf, re.M)
                if f:
                    env_file(sandboxed(f.group(1)), env)
    return env


def commands(st):
    return read(os.path.join(st, 'root', 'commands.log')).splitlines()


out = {}
status = read(os.path.join(state, 'status', 'unit')).split('\n')
out['status'] = status[0] if status[0] else 'none'
out['message'] = status[1] if len(status) > 1 else ''
out['ports'] = sorted(os.listdir(os.path.join(state, 'ports')))
rel = {}
for d in sorted(glob.glob(os.path.join(state, 'relations', '*'))):
    mine = os.path.join(d, 'data', 'wsgi-app.0')
    if not os.path.isdir(mine):
        continue
    ep = read(os.path.join(d, 'endpoint')).strip()
    rel[ep] = {k: read(os.path.join(mine, k)).rstrip('\n') for k in sorted(os.listdir(mine))}
out['relations'] = rel
new = commands(state)[len(commands(before)):]
out['restarts'] = sum('systemctl restart' in c for c in new)
out['reloads'] = sum('systemctl reload' in c for c in new)
out['commands'] = new
env = {}
units = []
for unit in sorted(glob.glob(os.path.join(root, 'etc', 'systemd', 'system', '*.service'))):
    units.append(os.path.basename(unit))
    env.update(unit_env(unit))
out['units'] = units
cfg = read(os.path.join(state, 'config', 'environment_variables'), '""')
try:
    names = [w.partition('=')[0] for w in shlex.split(json.loads(cfg) or '')]
except ValueError:
    names = []
out['watched'] = sorted(set(names) | {'DATABASE_URL'})
out['env'] = {k: env.get(k) for k in out['watched']}
json.dump(out, sys.stdout, indent=1, sort_keys=True)
print()
