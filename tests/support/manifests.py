"""Reading deploy/kubernetes/: its documents, the objects in them, a container's environment."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION = "kustomization.yaml"
#: Placeholder Secrets: kept out of the kustomization so that `kubectl apply -k` never
#: overwrites the real ones.
SECRET_TEMPLATES = "secrets.yaml"
POD_KINDS = {"Deployment", "Job"}
#: Kubernetes expands $(NAME) in env values from the variables defined before.
DEPENDENT_VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

Document = dict[str, Any]


def manifest_files() -> list[Path]:
    return sorted(MANIFESTS.glob("*.yaml"))


def resource_files() -> list[Path]:
    """The files of Kubernetes objects: all but the kustomization, Secret templates included."""
    return [path for path in manifest_files() if path.name != KUSTOMIZATION]


def documents_of(path: Path) -> list[Document]:
    loaded = [item for item in yaml.safe_load_all(path.read_text()) if item is not None]
    assert all(isinstance(item, dict) for item in loaded), f"{path.name}: not a mapping"
    return loaded


def resource_documents() -> list[Document]:
    """Every Kubernetes object: all files but the kustomization, Secret templates included."""
    return [document for path in resource_files() for document in documents_of(path)]


def kustomization() -> Document:
    (document,) = documents_of(MANIFESTS / KUSTOMIZATION)
    return document


def the(kind: str, name: str, documents: list[Document] | None = None) -> Document:
    found = [
        document
        for document in (resource_documents() if documents is None else documents)
        if document["kind"] == kind and document["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"expected one {kind} {name!r}, found {len(found)}"
    return found[0]


def pod_spec(workload: Document) -> Document:
    spec: Document = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Document) -> list[Document]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(workload: Document, name: str) -> Document:
    (found,) = [item for item in containers(workload) if item["name"] == name]
    return found


def workloads(documents: list[Document]) -> Iterator[Document]:
    return (document for document in documents if document["kind"] in POD_KINDS)


def config_map_data(documents: list[Document], name: str) -> dict[str, str]:
    data: dict[str, str] = the("ConfigMap", name, documents).get("data", {})
    return data


def secret_data(documents: list[Document], name: str) -> dict[str, str]:
    data: dict[str, str] = the("Secret", name, documents).get("stringData", {})
    return data


def effective_env(documents: list[Document], item: Document) -> dict[str, str]:
    """A container's environment as it starts: envFrom ConfigMaps, then env (a Secret's value
    is its template's placeholder, ``$(NAME)`` expanded), later entries winning."""
    values: dict[str, str] = {}
    for source in item.get("envFrom", []):
        values.update(config_map_data(documents, source["configMapRef"]["name"]))
    for entry in item.get("env", []):
        if "value" in entry:
            values[entry["name"]] = DEPENDENT_VARIABLE.sub(
                lambda match: values.get(match[1], match[0]), entry["value"]
            )
        else:
            reference = entry["valueFrom"]["secretKeyRef"]
            values[entry["name"]] = secret_data(documents, reference["name"])[reference["key"]]
    return values


def migrate_script() -> str:
    migrate = container(the("Job", "gateway-migrate"), "migrate")
    assert migrate["command"] == ["sh", "-c"]
    (script,) = migrate["args"]
    assert isinstance(script, str)
    return script
