# SPDX-License-Identifier: Apache-2.0
"""The part of kustomize that deploy/k8s uses, in Python, so CI renders the overlays offline
where `kubectl kustomize` is not installed. Where kubectl is, a test checks both agree.

Supported: `resources` (files and folders with a kustomization.yaml), `configMapGenerator`
(`files` only, with `disableNameSuffixHash: true`), `patches` (strategic merge patches, from
`path` or inline `patch`, matched by kind and name), `namespace`, `labels` (metadata labels;
`includeSelectors: true` is refused) and `images`. Anything else in a kustomization.yaml
raises, so a manifest never silently renders differently.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]

SUPPORTED = {
    "apiVersion",
    "kind",
    "resources",
    "configMapGenerator",
    "patches",
    "namespace",
    "labels",
    "images",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
POD_OWNERS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


class StrictStringLoader(yaml.SafeLoader):
    """YAML 1.2-like scalars: only plain decimal numbers are ints, so a hex address such as
    0x70997970... (which kustomize prints unquoted) stays a string, as Kubernetes reads it."""


StrictStringLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StrictStringLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9]*)$"), list("-+0123456789")
)


def load_all(text: str) -> list[Doc]:
    return [d for d in yaml.load_all(text, Loader=StrictStringLoader) if d]


def render(folder: Path) -> list[Doc]:
    spec = yaml.load((folder / "kustomization.yaml").read_text(), Loader=StrictStringLoader)
    unknown = set(spec) - SUPPORTED
    if unknown:
        raise ValueError(f"{folder}: kustomization fields this renderer lacks: {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        path = folder / entry
        docs.extend(render(path) if path.is_dir() else load_all(path.read_text()))
    docs.extend(_generated_configmap(folder, g) for g in spec.get("configMapGenerator", []))
    for patch in spec.get("patches", []):
        if "target" in patch:
            raise ValueError(f"{folder}: patches with a target are not supported")
        text = (folder / patch["path"]).read_text() if "path" in patch else patch["patch"]
        for change in load_all(text):
            _apply_patch(docs, change, folder)
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = spec["namespace"]
    for group in spec.get("labels", []):
        if group.get("includeSelectors") or group.get("includeTemplates"):
            raise ValueError(f"{folder}: labels on selectors or templates are not supported")
        for doc in docs:
            doc.setdefault("metadata", {}).setdefault("labels", {}).update(group["pairs"])
    for image in spec.get("images", []):
        for doc in docs:
            for container in _containers(doc):
                _set_image(container, image)
    return docs


def _generated_configmap(folder: Path, generator: Doc) -> Doc:
    unknown = set(generator) - {"name", "namespace", "files", "options"}
    if unknown or generator.get("options") != {"disableNameSuffixHash": True}:
        raise ValueError(f"{folder}: configMapGenerator beyond files without a hash suffix")
    metadata = {"name": generator["name"]}
    if "namespace" in generator:
        metadata["namespace"] = generator["namespace"]
    data = {Path(f).name: (folder / f).read_text() for f in generator["files"]}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def _apply_patch(docs: list[Doc], change: Doc, folder: Path) -> None:
    name = change["metadata"]["name"]
    targets = [d for d in docs if d["kind"] == change["kind"] and d["metadata"]["name"] == name]
    if len(targets) != 1:
        raise ValueError(f"{folder}: patch for {change['kind']}/{name} matches {len(targets)}")
    merged = merge(targets[0], change)
    targets[0].clear()
    targets[0].update(merged)


def merge(base: Any, change: Any) -> Any:
    """Strategic merge, as far as these manifests need it: maps merge key by key (null
    deletes), lists of named items merge by name (the patch's first), other lists are replaced."""
    if isinstance(base, dict) and isinstance(change, dict):
        out = copy.deepcopy(base)
        for key, value in change.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = merge(out[key], value)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(change, list) and _named(base) and _named(change):
        # kubectl's order: the patch's items first (merged with the base's of that name), then
        # the base's others.
        by_name = {old["name"]: old for old in base}
        out_list = [
            merge(by_name[item["name"]], item) if item["name"] in by_name else copy.deepcopy(item)
            for item in change
        ]
        patched = {item["name"] for item in change}
        out_list += [copy.deepcopy(old) for old in base if old["name"] not in patched]
        return out_list
    return copy.deepcopy(change)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def pod_spec(doc: Doc) -> Doc | None:
    if doc["kind"] not in POD_OWNERS:
        return None
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec


def _containers(doc: Doc) -> list[Doc]:
    spec = pod_spec(doc)
    if spec is None:
        return []
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _split_image(ref: str) -> tuple[str, str | None, str | None]:
    """name, tag, digest of an image reference (a registry port is not a tag)."""
    name, _, digest = ref.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


def _set_image(container: Doc, image: Doc) -> None:
    name, tag, digest = _split_image(container["image"])
    if name != image["name"]:
        return
    name = image.get("newName", name)
    if "digest" in image:
        container["image"] = f"{name}@{image['digest']}"
        return
    tag = image.get("newTag", tag)
    ref = f"{name}:{tag}" if tag else name
    container["image"] = f"{ref}@{digest}" if digest and "newTag" not in image else ref
