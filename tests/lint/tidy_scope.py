#!/usr/bin/env python3
"""Which translation units clang-tidy must check: those whose inputs changed since the last commit
at which every unit was checked clean (scripts/tidy-clean), the way CI lints a change's diff.

scripts/tidy-clean is written by `scripts/lint.sh BUILD --full --record` after a run over every
unit found nothing:
    commit <sha>                 every unit was clean there
    clang-tidy <version>         with this clang-tidy
    unit <path> <sha1>           and this compile command (folders replaced by <root>, <build>)

A unit is checked again when its compile command differs from the recorded one (flags, defines,
include folders), when it has no recorded command or no depfile (*.o.d, not built here), or when
the unit or any project file it includes (from the compiler's depfiles) differs from that commit:
committed since, changed in the work tree, or untracked. A changed schema (*.fbs) re-checks every
unit that includes a header flatc generates. Everything is checked when the baseline is missing,
its commit is not in this clone's history, the clang-tidy version differs, or .clang-tidy changed.

Usage: tidy_scope.py BUILD_DIR [--all]   prints the units to check, one per line, then on stderr
how many and why. tidy_scope.py BUILD_DIR --baseline  prints a baseline for HEAD (lint.sh --record).
tidy_scope.py --self-test checks the selection on a small made-up tree.
"""
import hashlib
import json
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
    """(commit, clang-tidy version, {unit: command hash}) or Nones."""
    path = root / BASELINE
    if not path.is_file():
        return None, None, {}
    fields, hashes = {}, {}
    for line in path.read_text().splitlines():
        parts = line.split(" ")
        if parts[0] == "unit" and len(parts) == 3:
            hashes[parts[1]] = parts[2]
        elif len(parts) >= 2:
            fields[parts[0]] = " ".join(parts[1:])
    return fields.get("commit"), fields.get("clang-tidy"), hashes


def command_hashes(root: pathlib.Path, build: pathlib.Path):
    """unit (repo-relative) -> sha1 of its compile command with the folders replaced."""
    out = {}
    for e in json.loads((build / "compile_commands.json").read_text()):
        try:
            unit = pathlib.Path(e["file"]).resolve().relative_to(root).as_posix()
        except ValueError:
            continue
        cmd = " ".join(e["command"].split()).replace(str(build), "<build>").replace(str(root), "<root>")
        out[unit] = hashlib.sha1(cmd.encode()).hexdigest()
    return out


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
        def project_path(name):  # repo-relative, or None for a file outside the repository
            p = pathlib.Path(os.path.normpath(name if os.path.isabs(name) else cwd / name))
            try:
                return p.resolve().relative_to(root).as_posix()
            except ValueError:
                return None

        paths = [project_path(n) for n in text.split(":", 1)[1].split()]
        if paths and paths[0] is not None:  # the first input is the unit itself
            inputs.setdefault(paths[0], set()).update(p for p in paths if p is not None)
    return inputs


def select(units, changed, inputs, hashes=None, recorded=None, generated="build/"):
    """The units to check, and why everything is checked (or None). `hashes` and `recorded` map
    units to their compile command's hash now and at the baseline; deps under `generated` come
    from the schemas."""
    if changed is None:
        return list(units), "the baseline commit is not in this clone"
    if ".clang-tidy" in changed:
        return list(units), ".clang-tidy changed"
    schema_changed = any(c.endswith(".fbs") for c in changed)
    hashes = hashes or {}
    recorded = recorded or {}
    out = []
    for u in units:
        deps = inputs.get(u)
        if (deps is None or u in changed or deps & changed or hashes.get(u) is None or hashes.get(u) != recorded.get(u)
                or (schema_changed and any(d.startswith(generated) for d in deps))):
            out.append(u)
    return out, None


def self_test() -> int:
    units = ["a/x.cc", "a/y.cc", "b/z.cc", "c/w.cc"]
    inputs = {"a/x.cc": {"a/x.cc", "a/x.h"}, "a/y.cc": {"a/y.cc", "a/x.h", "b/z.h", "build/gen/f.h"},
              "b/z.cc": {"b/z.cc", "b/z.h"}, "c/w.cc": {"c/w.cc"}}
    same = {u: "h" for u in units}
    cases = [
        (set(), same, []),
        ({"a/x.h"}, same, ["a/x.cc", "a/y.cc"]),
        ({"b/z.cc"}, same, ["b/z.cc"]),
        ({"b/CMakeLists.txt"}, same, []),  # a CMakeLists.txt matters only through the commands
        (set(), {**same, "c/w.cc": "other flags"}, ["c/w.cc"]),
        (set(), {u: h for u, h in same.items() if u != "b/z.cc"}, ["b/z.cc"]),  # a unit new to the build
        ({"schema/ferry.fbs"}, same, ["a/y.cc"]),
        ({".clang-tidy"}, same, units),
        (None, same, units),
    ]
    failures = 0
    for changed, now, want in cases:
        ins = dict(inputs)
        if "b/z.cc" not in now:
            ins.pop("b/z.cc")
        got, _ = select(units, changed, ins, now, same)
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
    if "--baseline" in sys.argv[2:]:
        print(f"commit {git('rev-parse', 'HEAD', cwd=root).stdout.strip()}")
        print(f"clang-tidy {clang_tidy_version()}")
        for u, h in sorted(command_hashes(root, build).items()):
            print(f"unit {u} {h}")
        return 0
    commit, version, recorded = read_baseline(root)
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
        generated = build.relative_to(root).as_posix() + "/" if build.is_relative_to(root) else str(build) + "/"
        chosen, reason = select(units, changed_since(root, commit), depfile_inputs(root, build),
                                command_hashes(root, build), recorded, generated)
    for u in chosen:
        print(u)
    how = f"every unit ({reason})" if reason else f"units changed since {commit[:12]} (clean there)"
    print(f"tidy_scope: {len(chosen)} of {len(units)} units: {how}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
