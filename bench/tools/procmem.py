#!/usr/bin/python3
"""procmem: memory of a server = the given root processes and all their descendants.

Prints one key=value line: procs, rss_kb (sum of VmRSS from /proc/PID/status) and pss_kb (sum
of Pss from /proc/PID/smaps_rollup; shared pages split between the processes sharing them).

    procmem.py PID [PID...]
"""
import os
import sys


def children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after the last ')'.
        fields = stat[stat.rindex(")") + 2:].split()
        kids.setdefault(int(fields[1]), []).append(int(entry))
    return kids


def field_kb(path, name):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    roots = [int(a) for a in sys.argv[1:]]
    kids = children_map()
    seen, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen or not os.path.exists(f"/proc/{pid}"):
            continue
        seen.add(pid)
        todo.extend(kids.get(pid, []))
    rss = sum(field_kb(f"/proc/{p}/status", "VmRSS") for p in seen)
    pss = sum(field_kb(f"/proc/{p}/smaps_rollup", "Pss") for p in seen)
    print(f"procs={len(seen)} rss_kb={rss} pss_kb={pss}")


if __name__ == "__main__":
    main()
