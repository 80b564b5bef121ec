"""The run manifest: what each stage did, so any stage can be rerun, skipped or resumed alone.

``manifest.json`` maps stage name -> entry (config hash, inputs, outputs, row counts,
quarantine reasons, teacher tokens, wall time, status). Written atomically after each change.
Only config values go in; secrets are never part of a config (configs name the env var).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from orca_math.common.config import StageConfig


class RunManifest:
    """A JSON manifest at ``path``; entries are keyed by stage name."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.data: dict[str, Any] = {"stages": {}}
        if self.path.exists():
            self.data = json.loads(self.path.read_text(encoding="utf-8"))
            self.data.setdefault("stages", {})

    @property
    def stages(self) -> dict[str, dict]:
        return self.data["stages"]

    def get(self, stage: str) -> dict | None:
        return self.stages.get(stage)

    def is_done(self, stage: str, config_hash: str, inputs: dict[str, str] | None = None) -> bool:
        """True when ``stage`` finished with this config and these inputs (so it can be skipped)."""
        e = self.get(stage)
        return bool(
            e and e.get("status") == "done" and e.get("config_hash") == config_hash
            and (inputs is None or e.get("inputs") == inputs)
        )

    def update(self, stage: str, **fields: Any) -> dict:
        """Merge ``fields`` into the stage's entry and save."""
        entry = self.stages.setdefault(stage, {"stage": stage})
        entry.update(fields)
        self.save()
        return entry

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".manifest.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=2, sort_keys=True, default=str)
        os.replace(tmp, self.path)

    @contextmanager
    def stage(self, stage: str, config: StageConfig, inputs: dict[str, str]) -> Iterator[dict]:
        """Record a stage run: 'running' on entry, then 'done' (or 'failed') with its wall time.

        The body fills the yielded dict with outputs, counts and anything else worth keeping.
        """
        started = time.time()
        self.update(stage, status="running", config_hash=config.config_hash(),
                    config=config.model_dump(mode="json"), inputs=inputs, started_at=started)
        result: dict[str, Any] = {}
        try:
            yield result
        except BaseException as e:
            self.update(stage, status="failed", error=f"{type(e).__name__}: {e}"[:2000],
                        wall_s=round(time.time() - started, 3))
            raise
        self.update(stage, status="done", error=None, finished_at=time.time(),
                    wall_s=round(time.time() - started, 3), **result)
