#!/usr/bin/env python3
"""Fails if a project include runs against the layers (an arrow back up the graph).

The table below says, for each folder, which folders its files may include with `#include "..."`
(system and library headers, `<...>`, are not checked). The longest matching folder prefix of a
file decides. Layers, bottom up:

  schema/            the wire contract both sides build on (error codes, result<T>, batches, frames)
  client/            the client library (public headers in client/include/ferry/), ferryctl
  broker/base        below every other broker folder; then runtime, log, consensus, meta, scheduler;
                     cluster (consensus and meta only); net; subscription; delay; partition;
                     topics; protocol; app (ferryd) on top
  tests/, bench/     may use anything

A unit test beside the code (`*_test.cc`, `*_test_fixture.h`) may include anything under broker/
and schema/. Usage: include_layers.py REPO_ROOT (exit 1 with file:line: reason on violations);
include_layers.py --self-test checks the checker on arrows that do and do not run back up.
"""
import pathlib
import re
import sys

BROKER_BELOW = {
    "broker/base": [],
    "broker/runtime": ["broker/base"],
    "broker/log": ["broker/base"],
    "broker/consensus": ["broker/base"],
    "broker/meta": ["broker/base"],
    "broker/scheduler": ["broker/base"],
    "broker/cluster": ["broker/base", "broker/consensus", "broker/meta"],
    "broker/net": ["broker/base", "broker/runtime"],
    "broker/peer": ["broker/base", "broker/runtime", "broker/consensus"],
    "broker/subscription": ["broker/base", "broker/runtime", "broker/meta", "broker/scheduler", "broker/log"],
    "broker/delay": ["broker/base", "broker/runtime", "broker/log", "broker/meta", "broker/scheduler",
                     "broker/subscription"],
    "broker/partition": ["broker/base", "broker/runtime", "broker/log", "broker/meta", "broker/scheduler",
                         "broker/subscription", "broker/delay"],
    "broker/topics": ["broker/base", "broker/runtime", "broker/log", "broker/meta", "broker/scheduler",
                      "broker/subscription", "broker/delay", "broker/partition"],
    "broker/protocol": ["broker/base", "broker/runtime", "broker/log", "broker/meta", "broker/scheduler",
                        "broker/subscription", "broker/delay", "broker/partition", "broker/topics", "broker/net"],
    "broker/app": ["broker/"],
}

# folder -> include prefixes allowed (a folder may always include itself)
RULES = {
    "schema": ["schema/"],
    "client/include": ["ferry/", "schema/"],
    "client/src": ["client/src/", "ferry/", "schema/"],
    "client/ferryctl": ["client/ferryctl/", "ferry/", "schema/"],
    "client/examples": ["ferry/"],
    "client/test": ["client/", "ferry/", "schema/", "tests/support/"],
    "tests": [""],
    "bench": [""],
}
for folder, below in BROKER_BELOW.items():
    RULES[folder] = [folder + "/", "schema/"] + [b if b.endswith("/") else b + "/" for b in below]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def rule_for(rel: str):
    best = None
    for folder in RULES:
        if rel.startswith(folder + "/") and (best is None or len(folder) > len(best)):
            best = folder
    return best


def check(root: pathlib.Path):
    """Returns (files checked, violations) for the tree at `root`."""
    bad = []
    checked = 0
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".h", ".cc") or not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        if rel.startswith("build") or "/build" in rel.split("/", 1)[0]:
            continue
        folder = rule_for(rel)
        if folder is None:
            continue
        unit_test = rel.endswith("_test.cc") or rel.endswith("_test_fixture.h")
        allowed = RULES[folder]
        if unit_test and folder.startswith("broker/"):
            allowed = ["broker/", "schema/"]
        checked += 1
        text = path.read_text(errors="replace")
        for m in INCLUDE.finditer(text):
            inc = m.group(1)
            if "/" not in inc:
                continue  # a header beside the file
            if not any(inc.startswith(a) for a in allowed):
                line = text.count("\n", 0, m.start()) + 1
                bad.append(f"{rel}:{line}: {folder}/ may not include \"{inc}\" (allowed: {', '.join(allowed)})")
    return checked, bad


def self_test() -> int:
    """The check must fail on arrows that run back up, and pass on ones that do not."""
    import tempfile
    cases = [("schema/x.h", "broker/base/assert.h", False), ("client/include/ferry/c.h", "client/src/a.h", False),
             ("broker/log/l.cc", "broker/partition/p.h", False), ("broker/base/b.cc", "broker/runtime/r.h", False),
             ("client/src/s.cc", "broker/base/assert.h", False), ("broker/log/l.cc", "broker/base/assert.h", True),
             ("broker/log/l_test.cc", "broker/partition/p.h", True), ("client/src/s.cc", "schema/result.h", True),
             ("bench/b.cc", "broker/log/log.h", True),
             ("broker/consensus/g.cc", "broker/base/assert.h", True),
             ("broker/consensus/g.cc", "broker/log/log.h", False),
             ("broker/cluster/m.cc", "broker/meta/meta_store.h", True),
             ("broker/cluster/m.cc", "broker/topics/router.h", False)]
    failures = 0
    for file, inc, ok in cases:
        with tempfile.TemporaryDirectory() as d:
            p = pathlib.Path(d) / file
            p.parent.mkdir(parents=True)
            p.write_text(f'#include "{inc}"\n')
            _, bad = check(pathlib.Path(d))
            if (not bad) != ok:
                print(f"self-test: {file} including {inc}: expected {'pass' if ok else 'a violation'}")
                failures += 1
    print(f"include_layers self-test: {len(cases) - failures} of {len(cases)} cases right")
    return 1 if failures else 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--self-test":
        return self_test()
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    checked, bad = check(root)
    for b in bad:
        print(b)
    if bad:
        print(f"include_layers: {len(bad)} include(s) run against the layers (tests/lint/include_layers.py)",
              file=sys.stderr)
        return 1
    print(f"include_layers: {checked} files follow the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
