"""Convert the KubeRay CRDs into strict JSON Schemas that tests/deploy validates manifests against.

    python tests/deploy/convert_crds.py [CRD_DIR]

CRD_DIR defaults to ``tests/deploy/crds`` (KubeRay v1.7.0's, vendored: ``crds/SOURCE.md``).
For each CRD, the ``ray.io/v1`` OpenAPI v3 schema is rewritten as a JSON Schema (see
``schemas/SOURCE.md``) and written to ``tests/deploy/schemas/<kind>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SCHEMA_DIR = HERE / "schemas"
DEFAULT_CRD_DIR = HERE / "crds"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml"}
API_VERSION = "v1"


def strict_schema(node: dict[str, Any]) -> dict[str, Any]:
    """Return ``node`` (an OpenAPI v3 schema) as a strict JSON Schema.

    - ``x-kubernetes-*`` keys are dropped;
    - ``nullable: true`` becomes "null is allowed as well";
    - an object that lists ``properties`` and says nothing of ``additionalProperties``
      gets ``additionalProperties: false``, so an unknown (mistyped) field fails.

    Only schema positions are rewritten: field names under ``properties`` and literal values
    (``default``, ``enum``, ``required``) are kept as they are.
    """
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = strict_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [strict_schema(sub) for sub in value]
        else:
            out[key] = value
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if node.get("nullable") is True:
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def crd_schema(crd: dict[str, Any], version: str = API_VERSION) -> dict[str, Any]:
    """The strict JSON Schema of one served version of a CRD document."""
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema = strict_schema(served["schema"]["openAPIV3Schema"])
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            schema["title"] = f"{crd['spec']['group']}/{version} {crd['spec']['names']['kind']}"
            return schema
    raise KeyError(f"{crd['metadata']['name']} does not serve {version}")


def convert(crd_dir: Path, out_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Convert every CRD of ``CRD_FILES`` found in ``crd_dir``; return the files written."""
    written = []
    for kind, name in CRD_FILES.items():
        with open(crd_dir / name) as f:
            crd = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        path = out_dir / f"{kind}.json"
        path.write_text(json.dumps(crd_schema(crd), indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CRD_DIR
    for written_path in convert(source):
        print(written_path)
