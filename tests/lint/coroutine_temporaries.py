#!/usr/bin/env python3
"""Fails if a lambda or a braced temporary is created inside a co_await expression.

Why: g++ 12 (Debian 12's compiler) copies such a temporary bitwise into the coroutine frame
instead of moving it, so a lambda capturing a std::string (or an aggregate holding one) later
frees a pointer into the frame ("free(): invalid pointer"). Named locals and std::string
temporaries are fine. Bind the lambda or aggregate to a named local first:

    auto fn = [rec] { return store.put(rec); };
    auto r = co_await runtime::on_disk(pool, std::move(fn));

Usage: coroutine_temporaries.py ROOT [ROOT...]   (exit 1 and a list of file:line on violations)
"""
import pathlib
import re
import sys

KEYWORDS_BEFORE_BRACE = {"else", "do", "try", "return", "co_return", "co_await"}


def strip(src: str) -> str:
    """Blanks comments and string/char literals, keeping line structure."""
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join("\n" if ch == "\n" else " " for ch in src[i:j]))
            i = j
        elif c == 'R' and src.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', src[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = ")" + m.group(1) + '"'
            j = src.find(end, i)
            j = n if j < 0 else j + len(end)
            out.append("".join("\n" if ch == "\n" else " " for ch in src[i:j]))
            i = j
        elif c in "\"'":
            if c == "'" and i > 0 and (src[i - 1].isalnum()):  # digit separator 1'000
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(c + " " * (j - i - 1) + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expression_end(s: str, start: int) -> int:
    depth = 0
    i = start
    while i < len(s):
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return i
        elif c == ";" and depth == 0:
            return i
        i += 1
    return i


def violations(text: str):
    s = strip(text)
    for m in re.finditer(r"\bco_await\b", s):
        begin = m.end()
        end = expression_end(s, begin)
        expr = s[begin:end]
        for k, c in enumerate(expr):
            if c not in "[{":
                continue
            before = expr[:k].rstrip()
            prev = before[-1:] if before else ""
            word = re.search(r"(\w+)$", before)
            if c == "[" and (prev in "(,={" or prev == ""):
                yield begin + k, "lambda"
                break
            elif c == "{" and (prev == ">" or (word and word.group(1) not in KEYWORDS_BEFORE_BRACE)):
                yield begin + k, "braced temporary"
                break


def main(roots):
    bad = []
    for root in roots:
        for path in sorted(pathlib.Path(root).rglob("*")):
            if path.suffix not in (".cc", ".h") or "build" in path.parts:
                continue
            text = path.read_text(errors="replace")
            if "co_await" not in text:
                continue
            for pos, kind in violations(text):
                line = text.count("\n", 0, pos) + 1
                bad.append(f"{path}:{line}: {kind} inside a co_await expression (g++ 12 copies it bitwise; bind it to a named local first)")
    for b in bad:
        print(b)
    if bad:
        print(f"{len(bad)} violation(s); see the comment at the top of {sys.argv[0]}")
        return 1
    print("no lambdas or braced temporaries inside co_await expressions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["."]))
