"""Stage configs: one pydantic model per stage, loaded from a section of a YAML file.

A config file (``configs/*.yaml``) holds one top-level key per stage (``eval:``, ``sft:``, ...).
Each stage reads its own section with :func:`load_stage_config`; unknown keys are errors, so a
typo never silently falls back to a default.

Files are layered, so a preset holds only what it changes:

- ``extends: NAME`` (top level) names the base: a path relative to this file, or one
  :func:`resolve_config_path` finds (the working dir, or a preset in ``configs/``: ``extends: tiny``).
  A base may extend another; a cycle is a :class:`ConfigError`.
- ``train:`` holds what the training sections ``sft``, ``dpo``, ``kto`` and ``rft`` share (the
  fields of every trainer config: learning rate, batch, precision, ``scaling``...); it is merged
  under each of them, so a key written in a section wins over ``train:`` in the same file.
- Each file is expanded on its own (its ``train:`` under its training sections), then merged
  over its base: mappings merge key by key, recursively; a list, a scalar or ``null`` replaces the
  base's value. The child's word always wins, ``train:`` included: a child's ``train.seed`` beats
  the base's ``sft.seed``. A mapping that names another ``kind:`` than the base's (``teacher:
  {kind: procedural}`` over an endpoint) replaces it, since each kind has its own keys.

:func:`load_yaml` returns that flat result (no ``extends``, no ``train``), which is what every
section loader reads.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent
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

    def config_hash(self) -> str:
        """Stable short hash of the config's values, used to tell whether a stage must rerun."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resolve_config_path(path: str | Path) -> Path:
    """Accept a path, or a bare preset name such as ``tiny`` that lives in ``configs/``."""
    p = Path(path)
    if p.exists():
        return p
    for candidate in (CONFIG_DIR / p, CONFIG_DIR / f"{p}.yaml"):
        if candidate.exists():
            return candidate
    raise ConfigError(path, "<file>", "no such config file (looked in the working dir and configs/)")


TRAIN_SECTIONS = ("sft", "dpo", "kto", "rft")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a config file with its ``extends:`` chain and ``train:`` section resolved; errors name the file."""
    return _resolve(resolve_config_path(path), ())


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
    data = _expand_train(_read_yaml(p), p)
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


def _expand_train(data: dict[str, Any], file: Path) -> dict[str, Any]:
    """Merge the file's ``train:`` section under each of its training sections (creating them)."""
    if "train" not in data:
        return data
    shared = data.pop("train") or {}
    for key in ("train", *TRAIN_SECTIONS):
        value = shared if key == "train" else data.get(key)
        if value is not None and not isinstance(value, dict):
            raise ConfigError(file, key, f"must be a mapping, got {type(value).__name__}")
    for section in TRAIN_SECTIONS:
        data[section] = deep_merge(shared, data.get(section) or {})
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: mappings merge recursively, anything else replaces; shares nothing with either."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        old = out.get(key)
        other_kind = isinstance(value, dict) and "kind" in value and isinstance(old, dict) \
            and old.get("kind") != value["kind"]
        if isinstance(value, dict) and isinstance(old, dict) and not other_kind:
            out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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
        if value is None:
            continue
        target = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return data
