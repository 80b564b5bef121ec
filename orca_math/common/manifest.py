"""The run manifest: what each stage did, so any stage can be rerun, skipped or resumed alone.

``manifest.json`` maps stage name -> entry (signature, config, inputs, outputs, row counts,
quarantine reasons, teacher tokens, wall time, status), written by the stage runner
(``runner.py``) atomically after each change.
Only config values go in; secrets are never part of a config (configs name the env var).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


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
