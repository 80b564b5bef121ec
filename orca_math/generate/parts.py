"""Committed output parts: the unit of progress and of resume for ``generate`` and ``solve``.

Each batch of seeds is written to ``parts/.tmp-*/`` and renamed to ``parts/part-<key>/`` in one
atomic step (``key`` is a hash of its seed ids). A part holds ``problems.parquet``,
``quarantine.parquet``, ``seeds.parquet`` and ``part.json`` (seed ids, per-flow counts, teacher
usage). A crash leaves only ``.tmp-*`` folders, which are deleted on the next start; a rerun skips
every seed found in a committed part, so no seed is lost or produced twice. Parts in one folder
were all made with the same settings: the runner removes the folder when anything but the seed
``limit`` changes (``common/runner.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from orca_math.common.contract import SeedOutput
from orca_math.common.records import RecordError, read_parquet, write_parquet, write_quarantine
from orca_math.common.schema import PROBLEM, QUARANTINE, stable_id
from orca_math.teacher.client import TeacherUsage, merge_usage

PART_PREFIX = "part-"
TMP_PREFIX = ".tmp-"


class PartStoreError(RuntimeError):
    """The parts folder cannot be resumed as is (names the part and what is wrong)."""


@dataclass
class PartsContent:
    """Everything in the committed parts, merged."""

    problems: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    seeds: list[dict] = field(default_factory=list)
    by_flow: dict[str, Counter] = field(default_factory=dict)
    usage: dict[str, TeacherUsage] = field(default_factory=dict)
    parts: int = 0

    @property
    def candidates(self) -> int:
        return sum(c["candidates"] for c in self.by_flow.values())


class PartStore:
    """The ``parts/`` folder of one output directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def part_dirs(self) -> list[Path]:
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.iterdir() if p.is_dir() and p.name.startswith(PART_PREFIX))

    def remove_incomplete(self) -> int:
        """Delete folders of batches that crashed before their commit; return how many."""
        if not self.root.exists():
            return 0
        stale = [p for p in self.root.iterdir() if p.name.startswith(TMP_PREFIX)]
        for p in stale:
            shutil.rmtree(p, ignore_errors=False)
        return len(stale)

    def _meta(self, part: Path) -> dict:
        try:
            return json.loads((part / "part.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise PartStoreError(f"{part}/part.json: unreadable ({e}); delete the part to redo its seeds") from e

    def committed_seeds(self, wanted: set[str] | None = None) -> dict[str, str]:
        """seed id -> part name for every committed part whose seeds all lie in ``wanted`` (None: all).

        A part that holds some wanted seeds and some not (a smaller seed ``limit`` than the run that
        wrote it) is deleted: its wanted seeds are done again. A part with no wanted seed is kept
        for a later, larger limit.
        """
        owner: dict[str, str] = {}
        for part in self.part_dirs():
            seed_ids = self._meta(part)["seed_ids"]
            inside = wanted is None or all(s in wanted for s in seed_ids)
            if not inside:
                if any(s in wanted for s in seed_ids):
                    shutil.rmtree(part)
                continue
            for seed_id in seed_ids:
                if seed_id in owner:
                    raise PartStoreError(f"{part}: seed {seed_id} is also in {owner[seed_id]}")
                owner[seed_id] = part.name
        return owner

    def commit(self, seeds: list[dict], output: SeedOutput) -> Path:
        """Write one batch's output atomically; return the committed part folder."""
        seed_ids = sorted(s["id"] for s in seeds)
        final = self.root / f"{PART_PREFIX}{stable_id(*seed_ids)}"
        if final.exists():
            raise PartStoreError(f"{final}: already committed (a seed was scheduled twice)")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.root, prefix=TMP_PREFIX))
        try:
            write_parquet(output.problems, PROBLEM, tmp / "problems.parquet")
            write_quarantine(output.quarantined, tmp / "quarantine.parquet")
            write_parquet(seeds, PROBLEM, tmp / "seeds.parquet")
            meta = {
                "seed_ids": seed_ids,
                "by_flow": {flow: dict(c) for flow, c in output.by_flow.items()},
                "usage": {flow: u.as_dict() for flow, u in output.usage.items()},
            }
            (tmp / "part.json").write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
            os.rename(tmp, final)  # the commit: atomic on POSIX file systems
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
        return final

    def read_all(self, parts: set[str] | None = None) -> PartsContent:
        """Merge the committed parts named in ``parts`` (None: every one), rows in part-name order."""
        out = PartsContent()
        for part in self.part_dirs():
            if parts is not None and part.name not in parts:
                continue
            meta = self._meta(part)
            try:
                out.problems += read_parquet(part / "problems.parquet", PROBLEM)
                out.quarantined += read_parquet(part / "quarantine.parquet", QUARANTINE)
                out.seeds += read_parquet(part / "seeds.parquet", PROBLEM)
            except (OSError, RecordError) as e:
                raise PartStoreError(f"{part}: unreadable ({e}); delete the part to redo its seeds") from e
            for flow, counts in meta["by_flow"].items():
                out.by_flow.setdefault(flow, Counter()).update(counts)
            merge_usage(out.usage, {f: TeacherUsage.from_dict(u) for f, u in meta["usage"].items()})
            out.parts += 1
        return out
