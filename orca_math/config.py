"""Stage configs: one pydantic model per stage, loaded from a section of a YAML file.

A config file (``configs/*.yaml``) holds one top-level key per stage (``eval:``, ``sft:``, ...).
Each stage reads its own section with :func:`load_stage_config`; unknown keys are errors, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

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

    # Settings that change how a stage runs, not what it writes (resources, concurrency, retries,
    # logging): left out of its identity, so changing them resumes or skips a stage rather than
    # redoing it.
    execution_fields: ClassVar[frozenset[str]] = frozenset()

    def identity(self) -> dict[str, Any]:
        """The config's values that decide a stage's output (nested configs drop their own
        execution fields too): what the stage signature hashes."""
        data = self.model_dump(mode="json", exclude=set(self.execution_fields))
        for name, value in self:
            if isinstance(value, StageConfig) and name in data:
                data[name] = value.identity()
        return data

    def config_hash(self) -> str:
        """Short hash of :meth:`identity`."""
        blob = json.dumps(self.identity(), sort_keys=True)
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


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict; errors name the file."""
    p = resolve_config_path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(p, "<file>", f"invalid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(p, "<file>", f"top level must be a mapping, got {type(data).__name__}")
    return data


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
