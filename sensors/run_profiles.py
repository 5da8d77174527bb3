"""Run-config profiles: the named, versioned per-asset configuration that retraining runs use.

The asset configs' defaults are the demo's small CPU settings; a sensor-triggered retrain must not
train with those. A profile is a JSON (or YAML) file ``{"description": …, "assets": {asset: config}}``;
``production`` ships in ``sensors/profiles/``, and ``RetrainingPolicy.profile`` names it or a file of
the user's own. Its version is a hash of its content, recorded on every run it configures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from warehouse.ids import content_id

BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"


class ProfileError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    version: str
    source: str
    assets: dict[str, dict[str, Any]]

    def run_config(self, asset_names: list[str]) -> dict[str, Any]:
        """Dagster run config for a job of ``asset_names`` (a job refuses config for ops it lacks)."""
        return {"ops": {a: {"config": self.assets[a]} for a in asset_names if a in self.assets}}

    def tags(self) -> dict[str, str]:
        return {"zhufu/profile": self.name, "zhufu/profile_version": self.version}


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix not in (".yaml", ".yml"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ProfileError(f"run-config profile {path}: {e}") from e
    import yaml  # a dependency of dagster

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ProfileError(f"run-config profile {path}: {e}") from e


def load_profile(ref: str, schemas: Mapping[str, type[BaseModel]] | None = None) -> Profile:
    """The profile named ``ref`` (built in) or stored at path ``ref``. With ``schemas`` (asset name →
    its config class) every asset and field is checked now, not when a run is launched."""
    path = BUILTIN_DIR / f"{ref}.json" if ref in builtin_profiles() else Path(ref).expanduser()
    if not path.is_file():
        raise ProfileError(f"run-config profile {ref!r}: no such built-in profile ({', '.join(builtin_profiles())}) "
                           "or file")
    data = _read(path)
    if not isinstance(data, dict) or not isinstance(data.get("assets"), dict):
        raise ProfileError(f"run-config profile {path}: expected a mapping with an 'assets' mapping")
    assets: dict[str, dict[str, Any]] = data["assets"]
    for name, cfg in assets.items():
        if schemas is None:
            continue
        if name not in schemas:
            raise ProfileError(f"run-config profile {path}: unknown asset {name!r} (known: {', '.join(schemas)})")
        if unknown := set(cfg) - set(schemas[name].model_fields):
            raise ProfileError(f"run-config profile {path}: {name} has no option {', '.join(sorted(unknown))}")
        try:
            schemas[name](**cfg)
        except ValueError as e:
            raise ProfileError(f"run-config profile {path}: {name}: {e}") from e
    return Profile(name=ref if path.parent == BUILTIN_DIR else path.stem, version=content_id(data, length=12),
                   source=str(path), assets=assets)
