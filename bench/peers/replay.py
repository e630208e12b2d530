#!/usr/bin/env python3
"""replay.py BINDIR < STRACE: a dispatch script making the same hook-tool
calls, in the same order, with the same arguments, as a hook traced with
`strace -f -e trace=execve -s 100000` did (calls = successful execve of a
program in BINDIR, the fake tools). Run through fj like the hook, it costs
the harness + the tool calls and nothing else, so hook − replay is the
charm's own time. Added for the Rust agent (wsgi-charm bench/). stdin of
`relation-set --file -` is not captured: the replay sends an empty one.
"""
import re
import shlex
import sys

bindir = sys.argv[1].rstrip('/') + '/'
line_re = re.compile(r'^\d+\s+execve\("((?:[^"\\]|\\.)*)", \[(.*)\], .*\) = 0$')
str_re = re.compile(r'"((?:[^"\\]|\\.)*)"')
esc = {'n': b'\n', 't': b'\t', 'r': b'\r', 'v': b'\v', 'f': b'\f', '"': b'"', '\\': b'\\'}


def unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c != '\\':
            out += c.encode('utf-8')
            i += 1
            continue
        n = s[i + 1]
        if n == 'x':
            out.append(int(s[i + 2:i + 4], 16))
            i += 4
        elif n in '01234567':
            m = re.match(r'[0-7]{1,3}', s[i + 1:]).group(0)
            out.append(int(m, 8))
            i += 1 + len(m)
        else:
            out += esc.get(n, n.encode())
            i += 2
    return out.decode('utf-8', 'surrogateescape')


calls = []
for line in sys.stdin:
    m = line_re.match(line.rstrip('\n'))
    if not m or not unescape(m.group(1)).startswith(bindir):
        continue
    argv = [unescape(a) for a in str_re.findall(m.group(2))]
    calls.append(argv)
print('#!/bin/sh')
print(f'# {len(calls)} hook-tool calls replayed (replay.py)')
for argv in calls:
    print(' '.join(shlex.quote(a) for a in argv) + ' </dev/null >/dev/null 2>&1')
print('exit 0')
