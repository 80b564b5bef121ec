"""Stage configs: one pydantic model per stage, loaded from a section of a YAML file.

A config file (``configs/*.yaml``) holds one top-level key per stage (``eval:``, ``sft:``, ...).
Each stage reads its own section with :func:`load_stage_config`; unknown keys are errors, so a
typo never silently falls back to a default.

Files are layered, so a preset holds only what it changes:

- ``extends: NAME`` (top level) names the base: a path relative to this file, or one
  :func:`resolve_config_path` finds (the working dir, or a preset in ``configs/``: ``extends: tiny``).
  A base may extend another; a cycle is a :class:`ConfigError`.
- Shared sections (:data:`SHARED_SECTIONS`), one rule for both: ``train:`` holds what the training
  sections ``sft``, ``dpo``, ``kto`` and ``rft`` share (learning rate, batch, precision,
  ``scaling``...) and is merged under each of them; ``teacher:`` (one endpoint for every stage) is
  merged under ``generate.teacher`` and ``solve.teacher``. A key written in the section wins over
  the shared one in the same file. ``train:`` is only that; ``teacher:`` is also a section itself
  (the judge's and the run's teacher).
- Each file is expanded on its own (its shared sections under their sections), then merged
  over its base: mappings merge key by key, recursively; a list, a scalar or ``null`` replaces the
  base's value. The child's word always wins, shared sections included: a child's ``train.seed``
  beats the base's ``sft.seed``. A mapping that names another ``kind:`` than the one under it
  (``teacher: {kind: procedural}`` over an endpoint) replaces it, since each kind has its own keys.

:func:`load_yaml` returns that flat result (no ``extends``, no ``train``), which is what every
section loader reads. Command-line flags are one more layer on top (:class:`ConfigFile`, built by
:func:`config_from_args` from the flags :func:`add_config_flags` derives from the config classes).
"""

from __future__ import annotations

import argparse
import copy
import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs"

T = TypeVar("T", bound="StageConfig")


class ConfigError(ValueError):
    """A config file that cannot be used; names the file, the key and the reason."""

    def __init__(self, file: str | Path, key: str, reason: str):
        self.file, self.key, self.reason = str(file), key, reason
        super().__init__(f"{file}: {key}: {reason}")


class StageConfig(BaseModel):
    """Base of every stage config: strict keys, immutable, hashable into the run manifest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Settings that change how a stage runs, not what it writes (resources, concurrency, retries,
    # logging): left out of its identity, so changing them resumes or skips a stage rather than
    # redoing it.
    execution_fields: ClassVar[frozenset[str]] = frozenset()
    # Settings that say how much of the work to do, not how to do it (generate's seed ``limit``,
    # training's ``max_steps``): a change in them alone keeps what the stage committed (parts,
    # checkpoints) and runs it again in resume mode, so it does only the new work. The runner decides.
    resumable_fields: ClassVar[frozenset[str]] = frozenset()

    def identity(self) -> dict[str, Any]:
        """The config's values that decide a stage's output (nested configs drop their own
        execution fields too): what the stage signature hashes."""
        data = self.model_dump(mode="json", exclude=set(self.execution_fields))
        for name, value in self:
            if isinstance(value, StageConfig) and name in data:
                data[name] = value.identity()
        return data


def resolve_config_path(path: str | Path | ConfigFile) -> Path | ConfigFile:
    """Accept a path, or a bare preset name such as ``tiny`` that lives in ``configs/`` (a ConfigFile as is)."""
    if isinstance(path, ConfigFile):
        return path
    p = Path(path)
    if p.exists():
        return p
    for candidate in (CONFIG_DIR / p, CONFIG_DIR / f"{p}.yaml"):
        if candidate.exists():
            return candidate
    raise ConfigError(path, "<file>", "no such config file (looked in the working dir and configs/)")


TRAIN_SECTIONS = ("sft", "dpo", "kto", "rft")
# A shared section -> (the sections it is merged under, the key in them it is merged under (None: the
# section itself), whether it stays a section of its own).
SHARED_SECTIONS: dict[str, tuple[tuple[str, ...], str | None, bool]] = {
    "train": (TRAIN_SECTIONS, None, False),
    "teacher": (("generate", "solve"), "teacher", True),
}


def load_yaml(path: str | Path | ConfigFile) -> dict[str, Any]:
    """Read a config file with its ``extends:`` chain and shared sections resolved (a ConfigFile with its
    command-line settings over that); errors name the file."""
    p = resolve_config_path(path)
    return p.data() if isinstance(p, ConfigFile) else _resolve(p, ())


def _read_yaml(p: Path) -> dict[str, Any]:
    """One file's top-level mapping, as written."""
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(p, "<file>", f"invalid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(p, "<file>", f"top level must be a mapping, got {type(data).__name__}")
    return data


def _resolve(p: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """``p`` merged over its base chain; ``chain`` is the files already on the way (cycle check)."""
    if p.resolve() in chain:
        names = " -> ".join(str(f) for f in (*chain, p.resolve()))
        raise ConfigError(p, "extends", f"cycle: {names}")
    data = expand_shared(_read_yaml(p), p)
    base = data.pop("extends", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(p, "extends", f"must name a config file or preset, got {base!r}")
    return deep_merge(_resolve(_base_path(base, p), (*chain, p.resolve())), data)


def _base_path(base: str, child: Path) -> Path:
    """The file ``extends: base`` in ``child`` names: next to ``child`` first, then like --config."""
    for candidate in (child.parent / base, child.parent / f"{base}.yaml"):
        if candidate.is_file():
            return candidate
    try:
        return resolve_config_path(base)
    except ConfigError:
        raise ConfigError(child, "extends", f"no such base config {base!r} (looked next to the file, "
                                            "in the working dir and configs/)") from None


def expand_shared(data: dict[str, Any], file: str | Path) -> dict[str, Any]:
    """Merge each shared section of one file (``train:``, ``teacher:``) under the sections that share
    it (creating them), the sections' own keys winning; see :data:`SHARED_SECTIONS`."""
    for shared, (sections, key, kept) in SHARED_SECTIONS.items():
        if shared not in data:
            continue
        value = (data[shared] if kept else data.pop(shared)) or {}
        if not isinstance(value, dict):
            raise ConfigError(file, shared, f"must be a mapping, got {type(value).__name__}")
        for section in sections:
            own = data.get(section) or {}
            if not isinstance(own, dict):
                raise ConfigError(file, section, f"must be a mapping, got {type(own).__name__}")
            under = own if key is None else own.get(key) or {}
            if not isinstance(under, dict):
                raise ConfigError(file, f"{section}.{key}", f"must be a mapping, got {type(under).__name__}")
            merged = _merge_value(value, under)
            data[section] = merged if key is None else {**own, key: merged}
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: mappings merge recursively, anything else replaces; shares nothing with either."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = _merge_value(out.get(key), value)
    return out


def _merge_value(old: Any, new: Any) -> Any:
    """``new`` over ``old``: two mappings merge unless ``new`` names another ``kind:``; else ``new``."""
    other_kind = isinstance(new, dict) and "kind" in new and isinstance(old, dict) and old.get("kind") != new["kind"]
    if isinstance(new, dict) and isinstance(old, dict) and not other_kind:
        return deep_merge(old, new)
    return copy.deepcopy(new)


def validate_section(cls: type[T], data: dict[str, Any], file: str | Path, section: str) -> T:
    """Build ``cls`` from ``data``; a validation failure becomes a ConfigError naming the key."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(x) for x in (section, *first["loc"]) if x != "")
        raise ConfigError(file, key, f"{first['msg']} (got {first.get('input')!r})") from e


def load_stage_config(
    cls: type[T], path: str | Path | None, section: str, overrides: dict[str, Any] | None = None
) -> T:
    """Load one stage's config from ``section`` of a YAML file, then apply non-None overrides.

    ``path=None`` gives the class defaults (the paper's recipe). Overrides come from command-line
    flags and may use dotted keys (``engine.model``).
    """
    data: dict[str, Any] = {}
    file: str | Path = "<defaults>"
    if path is not None:
        file = resolve_config_path(path)
        raw = load_yaml(file).get(section, {}) or {}
        if not isinstance(raw, dict):
            raise ConfigError(file, section, f"must be a mapping, got {type(raw).__name__}")
        data = dict(raw)
    return validate_section(cls, apply_overrides(data, overrides), file, section)


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Set dotted keys (``engine.model``) of ``data`` in place; None values are skipped (flag not given)."""
    for dotted, value in (overrides or {}).items():
        if value is not None:
            set_dotted(data, dotted, value)
    return data


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """``data[a][b][c] = value`` for ``a.b.c``, creating (or replacing non-mapping) parents."""
    target = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        if not isinstance(target.get(part), dict):  # absent, null, or a value the override replaces
            target[part] = {}
        target = target[part]
    target[leaf] = value


# --- Command-line flags, derived from the config classes -------------------------------------------
#
# A command declares which fields of which sections it offers as named flags (their type, choices and
# help come from the pydantic field); every command also takes ``--set SECTION.KEY=VALUE`` for any
# field of the sections it reads. Both become a last layer over the config file:
# ``config_from_args(args)`` is passed wherever the command passed ``args.config``.

SET_FLAG = "--set"


@dataclass(frozen=True)
class ConfigFile:
    """A config file (None: the class defaults) with command-line settings layered over it, like a
    child that ``extends`` it. Every loader takes it where it takes a path."""

    path: Path | None
    settings: tuple[tuple[str, Any], ...] = ()  # ("sft.scaling.num_workers", 2): dotted from the section

    def data(self) -> dict[str, Any]:
        """The file's resolved document with the settings merged over it (see :func:`load_yaml`)."""
        layer: dict[str, Any] = {}
        for dotted, value in self.settings:
            set_dotted(layer, dotted, value)
        return deep_merge(load_yaml(self.path) if self.path is not None else {}, expand_shared(layer, SET_FLAG))

    def __str__(self) -> str:
        flags = " ".join(f"{SET_FLAG} {key}={json.dumps(value)}" for key, value in self.settings)
        return f"{self.path if self.path is not None else '<defaults>'} {flags}".strip()

    def __fspath__(self) -> str:  # Path(config).name in reports: the file's name
        return str(self.path if self.path is not None else "<defaults>")


def add_config_flags(parser: argparse.ArgumentParser, section: str, cls: Any,
                     fields: Iterable[str] | Mapping[str, str] = ()) -> None:
    """Add flags for ``fields`` of ``cls`` (the ``section:`` of a config file), and ``--set``.

    ``fields`` are dotted field paths (``scaling.num_workers``); a mapping gives a flag its name
    (``{"base_url": "--teacher-url"}``), else it is the last part in kebab case (``--num-workers``).
    ``cls`` may be a union of models (``TeacherConfig | ProceduralTeacherConfig``). Call once per
    section the command reads, even with no fields, so ``--set`` accepts that section.
    """
    sections = parser.get_default("config_sections")
    if sections is None:
        sections = {}
        parser.set_defaults(config_sections=sections)
        parser.add_argument(
            SET_FLAG, dest="config_set", action="append", default=[], metavar="SECTION.KEY=VALUE",
            type=lambda text: _parse_setting(text, sections),
            help="set any config field over --config (repeatable); VALUE is YAML: 3, 1.0e-4, true, null, "
                 "[a, b], {CPU: 1}; `train.KEY` sets it for every training section")
    sections[section] = cls
    names = fields if isinstance(fields, Mapping) else {key: None for key in fields}
    for key, flag in names.items():
        info = field_info(cls, key)
        if info is None:
            raise ValueError(f"{section}.{key}: no such field of {_type_name(cls)}")
        flag = flag or "--" + key.rsplit(".", 1)[-1].replace("_", "-")
        help_text = " ".join(filter(None, [info.description, f"(config: {section}.{key})"]))
        parser.add_argument(flag, dest=f"{section}.{key}", default=None, help=help_text,
                            **_argparse_type(info.annotation))


def config_from_args(args: argparse.Namespace) -> ConfigFile | str | None:
    """``args.config`` with the named config flags that were given and the ``--set``s layered over it."""
    sections = getattr(args, "config_sections", None) or {}
    flags = [(dest, value) for dest, value in vars(args).items()
             if value is not None and "." in dest and dest.split(".", 1)[0] in sections]
    settings = tuple(flags) + tuple(getattr(args, "config_set", None) or ())
    if not settings:
        return args.config
    return ConfigFile(resolve_config_path(args.config) if args.config is not None else None, settings)


def _parse_setting(text: str, sections: dict[str, Any]) -> tuple[str, Any]:
    """``SECTION.KEY=VALUE`` -> (dotted key, YAML-parsed value); an unknown section or field is a usage error."""
    dotted, sep, raw = text.partition("=")
    dotted = dotted.strip()
    section, _, key = dotted.partition(".")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SECTION.KEY=VALUE, e.g. sft.learning_rate=1.0e-4")
    if section not in sections:
        raise argparse.ArgumentTypeError(f"{text!r}: this command reads no {section!r} section "
                                         f"(it reads: {', '.join(sorted(sections))})")
    if field_info(sections[section], key) is None:
        raise argparse.ArgumentTypeError(f"{text!r}: {dotted} is no field of {_type_name(sections[section])}")
    try:
        return dotted, yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"{text!r}: VALUE is not YAML: {e}") from e


def field_info(cls: Any, dotted: str):
    """The pydantic FieldInfo at ``dotted`` in model (or union of models) ``cls``; None if there is none.

    Below a free-form mapping field (``deepspeed``, ``resources``) any key is accepted: the field's info is returned.
    """
    info = None
    for part in dotted.split("."):
        models = _models(cls) if info is None else _models(info.annotation)
        if not models:
            return info if info is not None and _is_mapping(info.annotation) else None
        found = [m.model_fields[part] for m in models if part in m.model_fields]
        if not found:
            return None
        info = found[0]
    return info


def _members(annotation: Any) -> list[Any]:
    """The types of a union (``X | None`` too, ``Annotated`` unwrapped), or ``[annotation]``."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return [m for a in typing.get_args(annotation) if a is not type(None) for m in _members(a)]
    return [annotation]


def _models(annotation: Any) -> list[type[BaseModel]]:
    return [a for a in _members(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]


def _is_mapping(annotation: Any) -> bool:
    return any(a is dict or typing.get_origin(a) is dict for a in _members(annotation))


def _type_name(cls: Any) -> str:
    return " | ".join(getattr(m, "__name__", str(m)) for m in _members(cls))


def _argparse_type(annotation: Any) -> dict[str, Any]:
    """``add_argument`` keywords for a field: int/float/str as such, a Literal as choices, bool as
    ``--x/--no-x``, anything else parsed as YAML."""
    members = _members(annotation)
    if len(members) == 1:
        (member,) = members
        if member is bool:
            return {"action": argparse.BooleanOptionalAction}
        if member in (int, float, str):
            return {"type": member, "metavar": member.__name__.upper()}
        if typing.get_origin(member) is Literal:
            choices = list(typing.get_args(member))
            return {"type": type(choices[0]), "choices": choices}
    return {"type": yaml.safe_load, "metavar": "YAML"}
