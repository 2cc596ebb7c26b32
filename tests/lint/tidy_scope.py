#!/usr/bin/env python3
"""Which translation units clang-tidy must check: those whose inputs changed since the last commit
at which every unit was checked clean (scripts/tidy-clean), the way CI lints a change's diff.

scripts/tidy-clean holds two lines, written by `scripts/lint.sh BUILD --full --record` after a run
over every unit found nothing:
    commit <sha>              every unit was clean there
    clang-tidy <version>      with this clang-tidy

A unit is checked again when the unit itself or any file it includes (from the compiler's depfiles
in the build folder, *.o.d) differs from that commit: committed since, changed in the working
tree, or untracked. Everything is checked when the baseline is missing, its commit is not in this
clone's history, the clang-tidy version differs, .clang-tidy or a schema (*.fbs, whose generated
headers the units include) changed, or the top-level CMakeLists.txt changed; a changed
CMakeLists.txt in a folder (compile flags) re-checks every unit under that folder. A unit without
a depfile (not built in this folder) is always checked.

Usage: tidy_scope.py BUILD_DIR [--all]   prints the units to check, one per line, then on stderr
why (baseline and counts). --self-test checks the selection on a small made-up tree.
"""
import os
import pathlib
import subprocess
import sys

BASELINE = "scripts/tidy-clean"


def git(*args, cwd="."):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def clang_tidy_version():
    try:
        out = subprocess.run(["clang-tidy", "--version"], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return "none"
    for line in out.splitlines():
        if "version" in line:
            return line.strip().split("version", 1)[1].strip()
    return out.strip()


def read_baseline(root: pathlib.Path):
    path = root / BASELINE
    if not path.is_file():
        return None, None
    fields = dict(line.split(" ", 1) for line in path.read_text().splitlines() if " " in line)
    return fields.get("commit"), fields.get("clang-tidy")


def changed_since(root: pathlib.Path, commit: str):
    """Repo-relative paths that differ from `commit` (committed, staged, unstaged or untracked)."""
    diff = git("diff", "--name-only", commit, cwd=root)
    if diff.returncode != 0:
        return None
    untracked = git("ls-files", "--others", "--exclude-standard", cwd=root).stdout
    return {p for p in (diff.stdout + untracked).splitlines() if p}


def depfile_inputs(root: pathlib.Path, build: pathlib.Path):
    """unit (repo-relative) -> set of repo-relative inputs, from every *.o.d under `build`."""
    inputs = {}
    for dep in build.rglob("*.o.d"):
        text = dep.read_text(errors="replace").replace("\\\n", " ")
        if ":" not in text:
            continue
        # The compile ran in the CMake folder that holds CMakeFiles/: relative paths start there.
        parts = dep.parts
        cwd = pathlib.Path(*parts[: parts.index("CMakeFiles")]) if "CMakeFiles" in parts else build
        names = text.split(":", 1)[1].split()
        files = set()
        for n in names:
            p = pathlib.Path(os.path.normpath(cwd / n if not os.path.isabs(n) else n))
            try:
                files.add(p.resolve().relative_to(root).as_posix())
            except ValueError:
                continue  # a system header
        if names:
            first = pathlib.Path(os.path.normpath(cwd / names[0] if not os.path.isabs(names[0]) else names[0]))
            try:
                unit = first.resolve().relative_to(root).as_posix()
            except ValueError:
                continue
            inputs.setdefault(unit, set()).update(files)
    return inputs


def select(units, changed, inputs):
    """The units to check, and why everything is checked (or None)."""
    if changed is None:
        return list(units), "the baseline commit is not in this clone"
    for c in changed:
        if c == ".clang-tidy" or c.endswith(".fbs") or c == "CMakeLists.txt":
            return list(units), f"{c} changed"
    cmake_dirs = [c[: -len("CMakeLists.txt")] for c in changed if c.endswith("/CMakeLists.txt")]
    out = []
    for u in units:
        deps = inputs.get(u)
        if deps is None or u in changed or deps & changed or any(u.startswith(d) for d in cmake_dirs):
            out.append(u)
    return out, None


def self_test() -> int:
    units = ["a/x.cc", "a/y.cc", "b/z.cc", "c/w.cc"]
    inputs = {"a/x.cc": {"a/x.cc", "a/x.h"}, "a/y.cc": {"a/y.cc", "a/x.h", "b/z.h"}, "b/z.cc": {"b/z.cc", "b/z.h"}}
    cases = [
        (set(), ["c/w.cc"]),  # no depfile: always
        ({"a/x.h"}, ["a/x.cc", "a/y.cc", "c/w.cc"]),
        ({"b/z.cc"}, ["b/z.cc", "c/w.cc"]),
        ({"b/CMakeLists.txt"}, ["b/z.cc", "c/w.cc"]),
        ({"schema/ferry.fbs"}, units),
        ({".clang-tidy"}, units),
        (None, units),
    ]
    failures = 0
    for changed, want in cases:
        got, _ = select(units, changed, inputs)
        if sorted(got) != sorted(want):
            print(f"self-test: changed {changed}: got {got}, want {want}")
            failures += 1
    print(f"tidy_scope self-test: {len(cases) - failures} of {len(cases)} cases right")
    return 1 if failures else 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--self-test":
        return self_test()
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = pathlib.Path(git("rev-parse", "--show-toplevel").stdout.strip() or ".").resolve()
    build = pathlib.Path(sys.argv[1]).resolve()
    units = [u for u in git("ls-files", "*.cc", cwd=root).stdout.splitlines() if u]
    commit, version = read_baseline(root)
    reason = None
    if "--all" in sys.argv[2:]:
        reason = "--all"
    elif commit is None:
        reason = f"no {BASELINE}"
    elif git("cat-file", "-e", commit + "^{commit}", cwd=root).returncode != 0:
        reason = f"baseline {commit[:12]} is not in this clone"
    elif version != clang_tidy_version():
        reason = f"baseline was checked with clang-tidy {version}, this is {clang_tidy_version()}"
    if reason is not None:
        chosen = units
    else:
        chosen, reason = select(units, changed_since(root, commit), depfile_inputs(root, build))
    for u in chosen:
        print(u)
    how = f"every unit ({reason})" if reason else f"units changed since {commit[:12]} (clean there)"
    print(f"tidy_scope: {len(chosen)} of {len(units)} units: {how}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
