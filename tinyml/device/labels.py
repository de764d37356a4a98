"""What a device's label and score mean, read from a run's model.json (no TensorFlow needed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyml.errors import InputError


@dataclass(frozen=True)
class ModelInfo:
    task: str = "unknown"              # "classifier", "anomaly" or "unknown"
    classes: tuple[str, ...] = ()
    threshold: float | None = None     # anomaly: score above it means label 1

    @classmethod
    def from_run(cls, run_dir: Path) -> ModelInfo:
        from tinyml.train.artifacts import MODEL_JSON, read_json

        info = read_json(run_dir / MODEL_JSON, "model.json")
        threshold = info.get("threshold")
        try:
            return cls(str(info.get("task", "unknown")), tuple(str(c) for c in info.get("classes", [])),
                       None if threshold is None else float(threshold))
        except (TypeError, ValueError) as exc:
            raise InputError(f"{run_dir / MODEL_JSON} has a malformed threshold ({exc})",
                             hint="re-run `tinyml train` to recreate it") from exc

    @classmethod
    def from_model(cls, model: str | Path | None) -> ModelInfo:
        """From a run directory or a file inside one; the empty info when ``model`` is None."""
        if model is None:
            return cls()
        from tinyml.train.artifacts import MODEL_JSON, run_dir_of

        path = Path(model)
        if path.is_file() and not (path.parent / MODEL_JSON).is_file():
            raise InputError(f"no {MODEL_JSON} beside {path}, so the class names are unknown",
                             hint="pass the run directory written by `tinyml train`")
        return cls.from_run(run_dir_of(path))

    def label_name(self, label: int) -> str | None:
        if self.task == "classifier" and 0 <= label < len(self.classes):
            return self.classes[label]
        if self.task == "anomaly" and label in (0, 1):
            return ("normal", "anomaly")[label]
        return None
