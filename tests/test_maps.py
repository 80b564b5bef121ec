"""The maps are true: every file or module a docstring or the README's map names exists, and every
command-line flag the project's text mentions is one the real parser has."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from orca_math.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "orca_math"

# Flags of other programs that the README, docs and configs show next to ours (ray start / ray job
# submit / ray get-auth-token, pip), and the ``--x/--no-x`` placeholder of a boolean field's flags.
OTHER_PROGRAMS_FLAGS = {"--address", "--head", "--generate", "--working-dir", "--runtime-env-json", "--upgrade",
                        "--x", "--no-x"}
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_COMMAND = re.compile(r"orca-math ((?:serve )?[a-z][a-z-]*)")
_BENCH = re.compile(r"bench/\w+\.py")
_PY_PATH = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w-]+\.py)\b")
_DOTTED = re.compile(r"\b(orca_math(?:\.\w+)+)")


def _parsers() -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser by its command line after ``orca-math`` ("" for the top level)."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, sub_parser in action.choices.items():
                    walk(sub_parser, f"{name} {sub}".strip())

    walk(build_parser(), "")
    return found


PARSERS = _parsers()


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


ALL_FLAGS = set().union(*map(_flags, PARSERS.values()))


def _texts() -> list[tuple[Path, str]]:
    files = sorted(PACKAGE.rglob("*.py")) + [ROOT / "README.md", ROOT / "Makefile"]
    files += sorted((ROOT / "docs").glob("*.md")) + sorted((ROOT / "configs").glob("*.yaml"))
    files += sorted((ROOT / "ray_jobs").glob("*.py"))
    return [(f, f.read_text(encoding="utf-8")) for f in files]


def _module_docstrings() -> list[tuple[Path, str]]:
    out = []
    for f in sorted(PACKAGE.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(f.read_text(encoding="utf-8")))
        if doc:
            out.append((f, doc))
    return out


def _readme_map() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"### Where things are\n+```\n(.*?)```", readme, re.S)
    assert m, "README.md has no '### Where things are' map in a code block"
    return m.group(1)


def _exists_near(path: str, module_file: Path) -> bool:
    """A path as a docstring writes it: next to the module, in its package's parents, or from the repo root."""
    bases = [module_file.parent, *[p for p in module_file.parents if p.is_relative_to(ROOT)]]
    return any((base / path).exists() for base in bases)


def _resolves(dotted: str) -> bool:
    """``orca_math.a.b`` (a module) or ``orca_math.a.b.Name.attr`` (a module, then attributes)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module = ".".join(parts[:cut])
        try:
            if importlib.util.find_spec(module) is None:
                continue
        except ModuleNotFoundError:
            continue
        obj = importlib.import_module(module)
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _ours(path: str) -> bool:
    """A bare file name, or a path that starts in this repository or package (not another library's)."""
    head = path.split("/")[0]
    return "/" not in path or (ROOT / head).is_dir() or (PACKAGE / head).is_dir()


def test_every_file_a_docstring_names_exists():
    missing = [f"{f.relative_to(ROOT)}: {p}" for f, doc in _module_docstrings()
               for p in _PY_PATH.findall(doc) if _ours(p) and not _exists_near(p, f)]
    assert not missing, "docstrings name files that do not exist:\n" + "\n".join(missing)


def test_every_module_a_docstring_names_exists():
    missing = [f"{f.relative_to(ROOT)}: {d}" for f, doc in _module_docstrings()
               for d in _DOTTED.findall(doc) if not _resolves(d)]
    assert not missing, "docstrings name modules or names that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("init", sorted(PACKAGE.glob("*/__init__.py")), ids=lambda p: p.parent.name)
def test_a_package_docstrings_module_names_are_its_modules(init):
    """``name`` in a package's map, when it is no module, name or config field there, is a stale file name."""
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    package = importlib.import_module(f"orca_math.{init.parent.name}")
    modules = {p.stem for p in init.parent.glob("*.py")} | {p.name for p in init.parent.iterdir() if p.is_dir()}
    namespaces = [package] + [importlib.import_module(f"{package.__name__}.{m}")
                              for m in sorted(modules) if (init.parent / f"{m}.py").exists() and m != "__init__"]
    fields = {f for ns in namespaces for obj in vars(ns).values() for f in getattr(obj, "model_fields", {})
              if isinstance(obj, type)}
    stale = [name for name in re.findall(r"``([a-z_][a-z0-9_]*)``", doc)
             if name not in modules and name not in fields and not any(hasattr(ns, name) for ns in namespaces)]
    assert not stale, f"{init.relative_to(ROOT)} names what is not in the package: {stale}"


def test_every_path_and_command_in_the_readme_map_exists():
    block = _readme_map()
    paths = re.findall(r"(?<![\w.-])((?:[a-z_]+/)+(?:[a-z_]+\.py)?|[a-z_]+\.py)(?![\w-])", block)
    assert paths, "the README map names no paths"
    missing = [p for p in paths if not (ROOT / p if p.startswith("orca_math/") else PACKAGE / p).exists()]
    assert not missing, f"the README map names paths not under orca_math/: {missing}"
    commands = []
    for line in block.splitlines():
        m = re.search(r"orca-math (.+)$", line)
        if m:
            for cmd in re.split(r",\s*", m.group(1).strip()):
                head, *rest = cmd.split()
                commands += [f"{head} {alt}".strip() for alt in (rest[0].split("|") if rest else [""])]
    unknown = [c for c in commands if c not in PARSERS]
    assert commands and not unknown, f"the README map names commands the CLI does not have: {unknown}"


def test_no_text_mentions_a_flag_the_parser_does_not_have():
    """A flag after ``orca-math CMD`` on a line must be CMD's; one next to a bench script, that
    script's; any other one, some command's (or another program's, listed above)."""
    wrong = []
    for f, text in _texts():
        for n, line in enumerate(text.splitlines(), 1):
            for m in _FLAG.finditer(line):
                flag, before = m.group(0), line[:m.start()]
                commands = [c for c in _COMMAND.findall(before) if c in PARSERS]
                bench = _BENCH.findall(before)
                if commands:
                    ok = flag in _flags(PARSERS[commands[-1]]) | _flags(PARSERS[""])
                elif bench:
                    ok = f'"{flag}"' in (ROOT / bench[-1]).read_text(encoding="utf-8")
                else:
                    ok = flag in ALL_FLAGS or flag in OTHER_PROGRAMS_FLAGS
                if not ok:
                    wrong.append(f"{f.relative_to(ROOT)}:{n}: {flag}")
    assert not wrong, "flags mentioned that the parser does not have:\n" + "\n".join(wrong)


def test_every_command_line_in_the_readme_and_docs_names_a_real_command():
    unknown = []
    for f, text in _texts():
        for n, line in enumerate(text.splitlines(), 1):
            for m in re.finditer(r"orca-math ((?:serve )?[a-z][a-z-]*) +-", line):
                if m.group(1) not in PARSERS:
                    unknown.append(f"{f.relative_to(ROOT)}:{n}: orca-math {m.group(1)}")
    assert not unknown, "command lines name commands the CLI does not have:\n" + "\n".join(unknown)
