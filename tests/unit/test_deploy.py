"""Static checks of the deployment files: Dockerfile, .dockerignore and deploy/k8s.

Nothing here needs a network, a container engine or a cluster.

* Schemas: the ``kubernetes-validate`` package bundles, for each Kubernetes release it
  supports, the JSON schemas generated from that release's OpenAPI document, including
  "strict" variants that reject unknown fields (a misspelt ``replica:`` fails). It reads
  them from its own package data and never fetches anything, so it works offline. Every
  manifest is validated against every bundled release from ``MIN_K8S`` on.
* ``kustomization.yaml`` is a kustomize file, not a Kubernetes object, and has no schema
  there: it gets a structural check of its own below.
* Cross-checks catch what a schema cannot: an agent pointed at the wrong host, a port or
  Secret key that does not line up, a Service that also selects the agents, a private
  key mounted into the wrong pod.
* The Dockerfile is parsed with ``dockerfile-parse``; ``.dockerignore`` is interpreted by a
  small matcher with Docker's rules (last matching pattern wins, ``**`` spans folders, a
  pattern that matches a folder covers its contents).

Each check returns a list of problems; the negative tests break an in-memory copy and
assert that the check notices.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from kubernetes_validate.utils import all_versions

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = "kustomization.yaml"
MIN_K8S = (1, 29)

Doc = dict[str, Any]

# The CLI contract: default ports, and the options that name files or folders.
DEFAULT_PORTS = {"--publisher-port": 5000, "--results-port": 5001}
PORT_NAMES = {"--publisher-port": "publisher", "--results-port": "results"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --- loading --------------------------------------------------------------------------


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2])


def k8s_versions() -> list[str]:
    """The bundled Kubernetes releases (major.minor) from MIN_K8S on, oldest first."""
    found = {".".join(v.split(".")[:2]) for v in all_versions()}
    return sorted((v for v in found if _version_key(v) >= MIN_K8S), key=_version_key)


def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.rglob("*") if p.suffix in {".yaml", ".yml"})


@functools.cache
def _load() -> tuple[tuple[str, Doc], ...]:
    out = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                out.append((path.relative_to(K8S).as_posix(), doc))
    return tuple(out)


def manifests() -> list[Doc]:
    """A fresh deep copy of every document under deploy/k8s, which a test may break."""
    return copy.deepcopy([doc for _, doc in _load()])


def cluster_objects(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if d.get("kind") != "Kustomization"]


def dockerfile_text() -> str:
    return (ROOT / "Dockerfile").read_text(encoding="utf-8")


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# --- accessors ------------------------------------------------------------------------


def one(docs: list[Doc], kind: str) -> Doc:
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def deployment(docs: list[Doc], component: str) -> Doc:
    found = [
        d
        for d in docs
        if d.get("kind") == "Deployment"
        and d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
    ]
    assert len(found) == 1, f"expected one {component} Deployment, found {len(found)}"
    return found[0]


def pod_spec(deploy: Doc) -> Doc:
    spec: Doc = deploy["spec"]["template"]["spec"]
    return spec


def container(deploy: Doc) -> Doc:
    containers = pod_spec(deploy)["containers"]
    assert len(containers) == 1, "one container per pod"
    c: Doc = containers[0]
    return c


def option(args: list[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` or ``--flag=VALUE`` in an argument list."""
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def port_option(args: list[str], flag: str) -> int:
    value = option(args, flag)
    return DEFAULT_PORTS[flag] if value is None else int(value)


def generated_secrets(docs: list[Doc]) -> dict[str, set[str]]:
    """Secret name -> its keys, from the kustomization's secretGenerator and any Secret."""
    secrets: dict[str, set[str]] = {}
    for doc in docs:
        if doc.get("kind") == "Kustomization":
            for gen in doc.get("secretGenerator", []):
                keys = secrets.setdefault(gen["name"], set())
                for source in gen.get("files", []):
                    keys.add(source.split("=", 1)[0] if "=" in source else Path(source).name)
                for literal in gen.get("literals", []):
                    keys.add(literal.split("=", 1)[0])
        elif doc.get("kind") == "Secret":
            keys = secrets.setdefault(doc["metadata"]["name"], set())
            keys.update(doc.get("data", {}), doc.get("stringData", {}))
    return secrets


def mounted_files(deploy: Doc, docs: list[Doc]) -> dict[str, tuple[str, str]]:
    """Path in the container -> (Secret name, key) for every file a Secret volume shows."""
    secrets = generated_secrets(docs)
    volumes = {v["name"]: v for v in pod_spec(deploy).get("volumes", [])}
    files: dict[str, tuple[str, str]] = {}
    for mount in container(deploy).get("volumeMounts", []):
        secret = volumes.get(mount["name"], {}).get("secret")
        if secret is None:
            continue
        name = secret["secretName"]
        if "items" in secret:
            shown = [(item["path"], item["key"]) for item in secret["items"]]
        else:
            shown = [(key, key) for key in sorted(secrets.get(name, set()))]
        for path, key in shown:
            files[str(PurePosixPath(mount["mountPath"]) / path)] = (name, key)
    return files


# --- Kubernetes cross-checks ----------------------------------------------------------


def check_agents_find_hq(docs: list[Doc]) -> list[str]:
    problems = []
    service = one(docs, "Service")
    agent = deployment(docs, "agent")
    args = container(agent)["args"]
    host = option(args, "--hq")
    if host != service["metadata"]["name"]:
        problems.append(
            f"agent --hq {host!r} is not the HQ Service {service['metadata']['name']!r}"
        )
    if agent["metadata"].get("namespace") != service["metadata"].get("namespace"):
        problems.append("agent and HQ Service are in different namespaces (--hq is a short name)")
    service_ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    for flag, name in PORT_NAMES.items():
        if service_ports.get(name) != port_option(args, flag):
            problems.append(
                f"agent {flag} {port_option(args, flag)} but Service port {name!r} is "
                f"{service_ports.get(name)}"
            )
    return problems


def check_hq_ports(docs: list[Doc]) -> list[str]:
    problems = []
    service = one(docs, "Service")
    hq = container(deployment(docs, "hq"))
    declared = {p["name"]: p["containerPort"] for p in hq.get("ports", [])}
    for flag, name in PORT_NAMES.items():
        if declared.get(name) != port_option(hq["args"], flag):
            problems.append(
                f"HQ {flag} {port_option(hq['args'], flag)} but containerPort {name!r} is "
                f"{declared.get(name)}"
            )
    expected = {"publisher": 5000, "results": 5001, "api": 8081}
    for port in service["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        number = declared.get(target) if isinstance(target, str) else target
        if number not in declared.values():
            problems.append(f"Service port {port['name']!r} targets {target!r}, not an HQ port")
        elif number != port["port"]:
            problems.append(f"Service port {port['name']!r} is {port['port']} -> {number}")
        if expected.get(port["name"]) != port["port"]:
            problems.append(f"Service port {port['name']!r} is {port['port']}")
    missing = set(expected) - {p["name"] for p in service["spec"]["ports"]}
    if missing:
        problems.append(f"Service lacks ports {sorted(missing)}")
    for probe_name in ("readinessProbe", "livenessProbe"):
        probe = hq.get(probe_name)
        if probe is None:
            problems.append(f"HQ has no {probe_name}")
            continue
        port = probe.get("tcpSocket", {}).get("port")
        if port not in declared and port not in declared.values():
            problems.append(f"HQ {probe_name} probes {port!r}, not a declared port")
    return problems


def check_volumes(docs: list[Doc]) -> list[str]:
    problems = []
    for deploy in (deployment(docs, "hq"), deployment(docs, "agent")):
        name = deploy["metadata"]["name"]
        volumes = {v["name"]: v for v in pod_spec(deploy).get("volumes", [])}
        mounts = container(deploy).get("volumeMounts", [])
        for mount in mounts:
            if mount["name"] not in volumes:
                problems.append(f"{name}: mount {mount['mountPath']} uses undeclared volume")
            elif "secret" in volumes[mount["name"]] and not mount.get("readOnly"):
                problems.append(f"{name}: Secret mounted read-write at {mount['mountPath']}")
        unused = set(volumes) - {m["name"] for m in mounts}
        if unused:
            problems.append(f"{name}: volumes {sorted(unused)} are never mounted")
        paths = [m["mountPath"] for m in mounts]
        if len(paths) != len(set(paths)):
            problems.append(f"{name}: two volumes mounted at one path")
    return problems


def check_secrets(docs: list[Doc]) -> list[str]:
    problems = []
    secrets = generated_secrets(docs)
    for deploy in (deployment(docs, "hq"), deployment(docs, "agent")):
        name = deploy["metadata"]["name"]
        for volume in pod_spec(deploy).get("volumes", []):
            secret = volume.get("secret")
            if secret is None:
                continue
            if secret["secretName"] not in secrets:
                problems.append(f"{name}: no Secret {secret['secretName']!r} is generated")
                continue
            for item in secret.get("items", []):
                if item["key"] not in secrets[secret["secretName"]]:
                    problems.append(
                        f"{name}: Secret {secret['secretName']!r} has no key {item['key']!r}"
                    )
            mode = secret.get("defaultMode", 0o644)
            if mode & 0o007 or mode & 0o222:
                problems.append(f"{name}: Secret volume {volume['name']!r} mode {mode:o}")
    return problems


def check_cli_paths(docs: list[Doc]) -> list[str]:
    """Every file or folder the command line names exists in the container as meant."""
    problems = []
    for component, file_flags in (
        ("hq", ("--curve-key",)),
        ("agent", ("--curve-key", "--curve-hq")),
    ):
        deploy = deployment(docs, component)
        args = container(deploy)["args"]
        files = mounted_files(deploy, docs)
        for flag in file_flags:
            path = option(args, flag)
            if path is None:
                problems.append(f"{component}: no {flag}")
            elif path not in files:
                problems.append(f"{component}: {flag} {path} is not a mounted Secret file")
        # A pod sees exactly one private key, its own, the one --curve-key names.
        private = sorted(p for p in files if p.endswith(".key_secret"))
        if private != [option(args, "--curve-key")]:
            problems.append(f"{component}: private keys mounted: {private}")
    hq = deployment(docs, "hq")
    hq_args = container(hq)["args"]
    allow = option(hq_args, "--curve-allow")
    in_allow = [p for p in mounted_files(hq, docs) if str(PurePosixPath(p).parent) == allow]
    if not in_allow or any(not p.endswith(".key") for p in in_allow):
        problems.append(f"hq: --curve-allow {allow} must hold public .key files: {in_allow}")
    db = option(hq_args, "--db")
    volumes = {v["name"]: v for v in pod_spec(hq).get("volumes", [])}
    writable = {
        m["mountPath"]
        for m in container(hq).get("volumeMounts", [])
        if not m.get("readOnly")
        and volumes.get(m["name"], {}).keys() & {"emptyDir", "persistentVolumeClaim"}
    }
    if db is None or str(PurePosixPath(db).parent) not in writable:
        problems.append(f"hq: --db {db} is not on a writable data volume {sorted(writable)}")
    return problems


def check_curve(docs: list[Doc]) -> list[str]:
    """The HQ refuses a non-loopback --listen without CURVE; agents must then use it."""
    problems = []
    hq_args = container(deployment(docs, "hq"))["args"]
    listen = option(hq_args, "--listen")
    if listen is None or listen in LOOPBACK:
        problems.append(
            f"hq: listens on loopback ({listen or 'the default'}): no Service reaches it"
        )
    else:
        for flag in ("--curve-key", "--curve-allow"):
            if option(hq_args, flag) is None:
                problems.append(f"hq: --listen {option(hq_args, '--listen')} without {flag}")
    agent_args = container(deployment(docs, "agent"))["args"]
    for flag, suffix in (("--curve-key", ".key_secret"), ("--curve-hq", ".key")):
        value = option(agent_args, flag) or ""
        if not value.endswith(suffix):
            problems.append(f"agent: {flag} {value!r} should be a {suffix} file")
    if not (option(hq_args, "--curve-key") or "").endswith(".key_secret"):
        problems.append("hq: --curve-key should be the .key_secret file")
    return problems


def check_api_token(docs: list[Doc]) -> list[str]:
    """The API off loopback needs a token (cannonade refuses to start without one), and
    the token must come from a Secret the kustomization generates, not from args."""
    problems = []
    hq = container(deployment(docs, "hq"))
    api = option(hq["args"], "--api")
    if api is None or api.rpartition(":")[0] in LOOPBACK:
        return [f"hq: --api {api or 'the default'} is loopback: the Service cannot reach it"]
    if option(hq["args"], "--token") is not None:
        problems.append("hq: --token in args is readable by anyone who can list pods")
    env = {e["name"]: e for e in hq.get("env", [])}
    ref = env.get("CANNONADE_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef", {})
    if not ref:
        problems.append("hq: --api off loopback without CANNONADE_TOKEN from a Secret")
        return problems
    generated = {g["name"]: g for g in one(docs, "Kustomization").get("secretGenerator", [])}
    gen = generated.get(ref.get("name"))
    keys = {f.split("=", 1)[0] for f in (gen or {}).get("files", [])}
    if ref.get("key") not in keys:
        problems.append(f"hq: the token's Secret {ref} is not generated by the kustomization")
    return problems


def check_labels_and_selectors(docs: list[Doc]) -> list[str]:
    problems = []
    pod_labels = {}
    for component in ("hq", "agent"):
        deploy = deployment(docs, component)
        labels = deploy["spec"]["template"]["metadata"].get("labels", {})
        pod_labels[component] = labels
        want = {"app.kubernetes.io/name": "cannonade", "app.kubernetes.io/component": component}
        if not want.items() <= labels.items():
            problems.append(f"{component}: pod labels {labels}")
        selector = deploy["spec"]["selector"].get("matchLabels", {})
        if not selector or not selector.items() <= labels.items():
            problems.append(f"{component}: selector {selector} does not match pod labels")
        if container(deploy)["args"][0] != component:
            problems.append(f"{component}: runs `cannonade {container(deploy)['args'][0]}`")
        for constraint in pod_spec(deploy).get("topologySpreadConstraints", []):
            match = constraint["labelSelector"].get("matchLabels", {})
            if not match.items() <= labels.items():
                problems.append(f"{component}: topology spread selects {match}, not its pods")
    selector = one(docs, "Service")["spec"].get("selector", {})
    if not selector or not selector.items() <= pod_labels["hq"].items():
        problems.append(f"Service selector {selector} does not select the HQ pod")
    if selector.items() <= pod_labels["agent"].items():
        problems.append(f"Service selector {selector} also selects the agent pods")
    return problems


def check_security(docs: list[Doc], image_uid: int) -> list[str]:
    problems = []
    for component in ("hq", "agent"):
        deploy = deployment(docs, component)
        pod = pod_spec(deploy).get("securityContext", {})
        ctr = container(deploy).get("securityContext", {})
        effective = {**pod, **ctr}
        if effective.get("runAsNonRoot") is not True:
            problems.append(f"{component}: runAsNonRoot is not true")
        uid = effective.get("runAsUser", image_uid)
        if uid == 0:
            problems.append(f"{component}: runs as root (runAsUser 0)")
        elif uid != image_uid:
            problems.append(f"{component}: runAsUser {uid} is not the image's USER {image_uid}")
        if ctr.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{component}: allowPrivilegeEscalation is not false")
        if ctr.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{component}: root filesystem is writable")
        if "ALL" not in ctr.get("capabilities", {}).get("drop", []):
            problems.append(f"{component}: capabilities are not all dropped")
        if pod_spec(deploy).get("automountServiceAccountToken") is not False:
            problems.append(f"{component}: mounts a service account token it never uses")
    return problems


def _cpu(quantity: str | int) -> float:
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def check_workload_shape(docs: list[Doc]) -> list[str]:
    problems = []
    hq = deployment(docs, "hq")
    if hq["spec"].get("replicas") != 1:
        problems.append("hq: replicas must be 1 (one HQ owns the database)")
    if hq["spec"].get("strategy", {}).get("type") != "Recreate":
        problems.append("hq: strategy must be Recreate, so two HQs never overlap")
    images = set()
    for component in ("hq", "agent"):
        ctr = container(deployment(docs, component))
        images.add(ctr["image"])
        name, _, tag = ctr["image"].rpartition(":")
        if not name or "/" in tag or tag == "latest":
            problems.append(f"{component}: image {ctr['image']!r} has no pinned tag")
        if ctr.get("command") not in (None, ["cannonade"]):
            problems.append(f"{component}: command {ctr['command']} bypasses the entrypoint")
        resources = ctr.get("resources", {})
        for kind in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in resources.get(kind, {}):
                    problems.append(f"{component}: no {kind}.{resource}")
    if len(images) != 1:
        problems.append(f"HQ and agents run different images: {sorted(images)}")
    agent = container(deployment(docs, "agent"))
    cannons = option(agent["args"], "--cannons")
    limit = agent.get("resources", {}).get("limits", {}).get("cpu")
    if cannons is None or limit is None or int(cannons) != _cpu(limit):
        problems.append(f"agent: --cannons {cannons} is not its CPU limit {limit}")
    return problems


def check_namespaces(docs: list[Doc]) -> list[str]:
    namespace = one(docs, "Namespace")["metadata"]["name"]
    problems = []
    for doc in cluster_objects(docs):
        if doc["kind"] != "Namespace" and doc["metadata"].get("namespace") != namespace:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']} not in {namespace!r}")
    kustomization = one(docs, "Kustomization")
    if kustomization.get("namespace") != namespace:
        problems.append(f"kustomization namespace is not {namespace!r}")
    return problems


# kustomize fields this directory may use; anything else is most likely a typo.
KUSTOMIZE_FIELDS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "images",
    "secretGenerator",
    "configMapGenerator",
    "generatorOptions",
    "labels",
    "patches",
}
GENERATOR_FIELDS = {"name", "type", "files", "literals", "envs", "options", "behavior"}


def check_kustomization(docs: list[Doc], files: list[str]) -> list[str]:
    """files: the manifest files next to kustomization.yaml (paths relative to it)."""
    problems = []
    k = one(docs, "Kustomization")
    if k.get("apiVersion") != "kustomize.config.k8s.io/v1beta1":
        problems.append(f"kustomization apiVersion {k.get('apiVersion')!r}")
    unknown = set(k) - KUSTOMIZE_FIELDS
    if unknown:
        problems.append(f"kustomization has unknown fields {sorted(unknown)}")
    resources = k.get("resources", [])
    expected = sorted(f for f in files if f != KUSTOMIZATION and "/" not in f)
    if sorted(resources) != expected:
        problems.append(f"kustomization resources {sorted(resources)} are not {expected}")
    for gen in k.get("secretGenerator", []):
        unknown = set(gen) - GENERATOR_FIELDS
        if unknown:
            problems.append(f"secretGenerator {gen.get('name')}: unknown fields {unknown}")
        for source in gen.get("files", []):
            path = source.split("=", 1)[-1]
            if PurePosixPath(path).parent != PurePosixPath("keys"):
                problems.append(f"secretGenerator reads {path} outside the git-ignored keys/")
    return problems


def all_problems(docs: list[Doc]) -> list[str]:
    return [
        *check_agents_find_hq(docs),
        *check_hq_ports(docs),
        *check_volumes(docs),
        *check_secrets(docs),
        *check_cli_paths(docs),
        *check_curve(docs),
        *check_api_token(docs),
        *check_labels_and_selectors(docs),
        *check_security(docs, image_uid=dockerfile_uid(dockerfile_text())),
        *check_workload_shape(docs),
        *check_namespaces(docs),
        *check_kustomization(docs, [p.relative_to(K8S).as_posix() for p in manifest_files()]),
    ]


# --- Dockerfile -----------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    return [
        (s["instruction"], s["value"]) for s in parser.structure if s["instruction"] != "COMMENT"
    ]


def final_stage(text: str) -> list[tuple[str, str]]:
    instructions = dockerfile_instructions(text)
    starts = [i for i, (ins, _) in enumerate(instructions) if ins == "FROM"]
    return instructions[starts[-1] :] if starts else []


def dockerfile_uid(text: str) -> int:
    users = [value for ins, value in final_stage(text) if ins == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":", 1)[0]
    assert user.isdigit(), f"USER {user!r} should be numeric, for runAsNonRoot"
    return int(user)


def _exec_form(value: str) -> list[str] | None:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return None
    ok = isinstance(parsed, list) and all(isinstance(p, str) for p in parsed)
    return parsed if ok else None


def dockerfile_problems(text: str, console_scripts: dict[str, str]) -> list[str]:
    problems = []
    instructions = dockerfile_instructions(text)
    stages: set[str] = set()
    for ins, value in instructions:
        if ins == "FROM":
            words = [w for w in value.split() if not w.startswith("--")]
            image = words[0]
            if len(words) >= 3 and words[1].lower() == "as":
                stages.add(words[2])
            if image in stages or image == "scratch":
                continue
            name_tag = image.split("@", 1)[0]
            tag = name_tag.rpartition(":")[2] if ":" in name_tag.rpartition("/")[2] else ""
            if "@sha256:" not in image and (not tag or tag == "latest"):
                problems.append(f"FROM {image}: base image not pinned to a tag")
        if ins == "RUN" and re.search(r"\bpip\d*(\.\d+)? install\b", value):
            if "--no-cache-dir" not in value:
                problems.append(f"RUN {value!r}: pip install without --no-cache-dir")
            if "[test" in value:
                problems.append(f"RUN {value!r}: installs the test extra")
        if ins == "ADD" and re.search(r"\b(https?|git)://|git@", value):
            problems.append(f"ADD {value}: fetches from the network at build time")
        if ins in {"ENV", "ARG"} and re.search(r"SECRET|PASSWORD|TOKEN|PRIVATE", value, re.I):
            problems.append(f"{ins} {value}: looks like a secret baked into the image")
        if ins in {"COPY", "ADD"} and re.search(r"\.key(_secret)?\b", value):
            problems.append(f"{ins} {value}: copies a key into the image")
    stage = final_stage(text)
    users = [value.split(":", 1)[0] for ins, value in stage if ins == "USER"]
    if not users or users[-1] in {"root", "0"}:
        problems.append("the final stage runs as root (no non-root USER)")
    entrypoints = [_exec_form(value) for ins, value in stage if ins == "ENTRYPOINT"]
    if not entrypoints or entrypoints[-1] != ["cannonade"]:
        problems.append('ENTRYPOINT is not ["cannonade"] (exec form)')
    elif "cannonade" not in console_scripts:
        problems.append("ENTRYPOINT cannonade is not a console script in pyproject.toml")
    cmds = [_exec_form(value) for ins, value in stage if ins == "CMD"]
    if not cmds or cmds[-1] is None:
        problems.append("CMD is missing or not in exec form")
    exposed = {int(p.split("/")[0]) for ins, v in stage if ins == "EXPOSE" for p in v.split()}
    if not {5000, 5001, 8081} <= exposed:
        problems.append(f"EXPOSE {sorted(exposed)} lacks 5000, 5001 or 8081")
    return problems


def copied_sources(text: str) -> list[str]:
    """Build-context paths the Dockerfile copies (not those from another stage)."""
    sources = []
    for ins, value in dockerfile_instructions(text):
        if ins in {"COPY", "ADD"}:
            words = value.split()
            if any(w.startswith("--from") for w in words):
                continue
            sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


# --- .dockerignore --------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    assert "[" not in pattern, f"teach the matcher character classes: {pattern}"
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _self_and_parents(path: str) -> Iterator[str]:
    parts = path.split("/")
    for n in range(1, len(parts) + 1):
        yield "/".join(parts[:n])


def in_build_context(patterns: list[str], path: str) -> bool:
    """Whether Docker sends ``path`` (relative, '/'-separated) with the build context."""
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = str(PurePosixPath(raw.removeprefix("!").strip().lstrip("/")))
        rx = _pattern_regex(pattern)
        if any(rx.match(p) for p in _self_and_parents(path)):
            excluded = not negated
    return not excluded


# --- tests: Kubernetes ----------------------------------------------------------------


def test_the_validator_bundles_the_releases_we_claim():
    versions = k8s_versions()
    assert versions, f"kubernetes-validate bundles no release from {MIN_K8S} on"
    assert versions[0] == "{}.{}".format(*MIN_K8S)


def test_every_manifest_is_a_kubernetes_object_or_the_kustomization():
    seen = _load()
    files = {path for path, _ in seen}
    assert {
        "namespace.yaml",
        "hq-deployment.yaml",
        "hq-service.yaml",
        "agent-deployment.yaml",
        KUSTOMIZATION,
    } <= files
    for path, doc in seen:
        assert isinstance(doc, dict), path
        assert {"apiVersion", "kind"} <= doc.keys(), path
        if doc["kind"] != "Kustomization":
            assert doc.get("metadata", {}).get("name"), path


@pytest.mark.parametrize("version", k8s_versions())
def test_manifests_validate_against_the_kubernetes_schema(version):
    for doc in cluster_objects(manifests()):
        kubernetes_validate.validate(doc, version, strict=True)


def test_strict_schema_rejects_an_unknown_field():
    agent = deployment(manifests(), "agent")
    agent["spec"]["replica"] = agent["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(agent, k8s_versions()[-1], strict=True)


def test_schema_rejects_a_wrong_type():
    service = one(manifests(), "Service")
    service["spec"]["ports"][0]["port"] = "five thousand"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(service, k8s_versions()[0], strict=True)


CHECKS: dict[str, Callable[[list[Doc]], list[str]]] = {
    "agents find hq": check_agents_find_hq,
    "hq ports": check_hq_ports,
    "volumes": check_volumes,
    "secrets": check_secrets,
    "cli paths": check_cli_paths,
    "curve": check_curve,
    "api token": check_api_token,
    "labels and selectors": check_labels_and_selectors,
    "security": lambda docs: check_security(docs, dockerfile_uid(dockerfile_text())),
    "workload shape": check_workload_shape,
    "namespaces": check_namespaces,
    "kustomization": lambda docs: check_kustomization(
        docs, [p.relative_to(K8S).as_posix() for p in manifest_files()]
    ),
}


@pytest.mark.parametrize("name", CHECKS)
def test_cross_check_passes(name):
    assert CHECKS[name](manifests()) == []


def test_keys_folder_keeps_keys_out_of_git():
    ignore = (K8S / "keys" / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore
    assert "!.gitignore" in ignore


def _set_arg(component: str, flag: str, value: str) -> Callable[[list[Doc]], None]:
    def mutate(docs: list[Doc]) -> None:
        args = container(deployment(docs, component))["args"]
        args[args.index(flag) + 1] = value

    return mutate


def _drop_arg(component: str, flag: str) -> Callable[[list[Doc]], None]:
    def mutate(docs: list[Doc]) -> None:
        args = container(deployment(docs, component))["args"]
        i = args.index(flag)
        del args[i : i + 2]

    return mutate


def _volume(docs: list[Doc], component: str, name: str) -> Doc:
    volumes = pod_spec(deployment(docs, component))["volumes"]
    found: Doc = next(v for v in volumes if v["name"] == name)
    return found


BREAKAGES: list[tuple[str, Callable[[list[Doc]], None], str]] = [
    ("agent --hq typo", _set_arg("agent", "--hq", "cannonade-hq.svc"), "is not the HQ Service"),
    ("agent wrong port", _set_arg("agent", "--results-port", "5002"), "Service port 'results'"),
    ("hq wrong port", _set_arg("hq", "--publisher-port", "6000"), "containerPort 'publisher'"),
    (
        "service port mismatch",
        (lambda d: one(d, "Service")["spec"]["ports"][1].update(port=5011)),
        "'results'",
    ),
    (
        "mount of a missing volume",
        (lambda d: container(deployment(d, "hq"))["volumeMounts"][0].update(name="hq-keys")),
        "undeclared volume",
    ),
    (
        "item key typo",
        (lambda d: _volume(d, "agent", "hq-public-key")["secret"]["items"][0].update(key="hq")),
        "has no key 'hq'",
    ),
    (
        "secret name typo",
        (lambda d: _volume(d, "hq", "hq-key")["secret"].update(secretName="cannonade-hq")),
        "no Secret 'cannonade-hq'",
    ),
    (
        "world-readable key",
        (lambda d: _volume(d, "agent", "agent-key")["secret"].update(defaultMode=0o644)),
        "mode 644",
    ),
    (
        "hq private key given to the agents",
        (
            lambda d: _volume(d, "agent", "hq-public-key").update(
                secret={"secretName": "cannonade-hq-keys", "defaultMode": 0o440}
            )
        ),
        "private keys mounted",
    ),
    (
        "curve path outside the mount",
        _set_arg("agent", "--curve-hq", "/keys/hq.key"),
        "is not a mounted Secret file",
    ),
    ("listen without curve", _drop_arg("hq", "--curve-allow"), "without --curve-allow"),
    ("hq on loopback", _drop_arg("hq", "--listen"), "no Service reaches it"),
    (
        "api without its token",
        (lambda d: container(deployment(d, "hq")).pop("env")),
        "without CANNONADE_TOKEN",
    ),
    ("api on loopback", _drop_arg("hq", "--api"), "the Service cannot reach it"),
    (
        "service selects agents too",
        (lambda d: one(d, "Service")["spec"]["selector"].pop("app.kubernetes.io/component")),
        "also selects the agent pods",
    ),
    (
        "selector misses pods",
        (
            lambda d: deployment(d, "agent")["spec"]["selector"]["matchLabels"].update(
                {"app.kubernetes.io/component": "agents"}
            )
        ),
        "does not match pod labels",
    ),
    (
        "root user",
        (lambda d: pod_spec(deployment(d, "hq"))["securityContext"].update(runAsUser=0)),
        "runs as root",
    ),
    ("cannons != cpu", _set_arg("agent", "--cannons", "4"), "is not its CPU limit"),
    (
        "two hqs",
        (lambda d: deployment(d, "hq")["spec"].update(replicas=2)),
        "replicas must be 1",
    ),
    (
        "database on a read-only path",
        _set_arg("hq", "--db", "/keys/hq/cannonade.db"),
        "not on a writable data volume",
    ),
    (
        "resource left out of the kustomization",
        (lambda d: one(d, "Kustomization")["resources"].remove("hq-service.yaml")),
        "kustomization resources",
    ),
    (
        "latest image",
        (lambda d: container(deployment(d, "agent")).update(image="cannonade:latest")),
        "no pinned tag",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(m, e, id=name) for name, m, e in BREAKAGES],
)
def test_cross_checks_catch_a_broken_copy(mutate, expected):
    docs = manifests()
    mutate(docs)
    problems = all_problems(docs)
    assert any(expected in p for p in problems), problems


def test_the_real_manifests_are_untouched_by_the_broken_copies():
    assert all_problems(manifests()) == []


# --- tests: Dockerfile and .dockerignore ----------------------------------------------


def console_scripts() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    scripts: dict[str, str] = project.get("scripts", {})
    return scripts


def test_dockerfile_follows_the_rules():
    assert dockerfile_problems(dockerfile_text(), console_scripts()) == []


def test_dockerfile_user_is_the_pods_user():
    uid = dockerfile_uid(dockerfile_text())
    assert uid != 0
    for component in ("hq", "agent"):
        assert pod_spec(deployment(manifests(), component))["securityContext"]["runAsUser"] == uid


DOCKERFILE_BREAKAGES = [
    ("FROM python:3.11-slim-bookworm AS build", "FROM python AS build", "not pinned"),
    ("FROM python:3.11-slim-bookworm\n", "FROM python:latest\n", "not pinned"),
    ("USER 10001:10001", "USER root", "runs as root"),
    ("USER 10001:10001", "", "runs as root"),
    ('ENTRYPOINT ["cannonade"]', "ENTRYPOINT cannonade", "ENTRYPOINT"),
    ('ENTRYPOINT ["cannonade"]', 'ENTRYPOINT ["python", "-m", "cannonade"]', "ENTRYPOINT"),
    ("EXPOSE 5000 5001 8081", "EXPOSE 5000 8081", "EXPOSE"),
    ("pip install --no-cache-dir .", "pip install .", "--no-cache-dir"),
    ("pip install --no-cache-dir .", "pip install --no-cache-dir '.[test]'", "test extra"),
    ("COPY src ./src", "ADD https://example.invalid/src.tgz ./src", "network"),
    ("COPY src ./src", "COPY src ./src\nCOPY hq.key_secret /keys/", "copies a key"),
]


@pytest.mark.parametrize(("old", "new", "expected"), DOCKERFILE_BREAKAGES)
def test_dockerfile_checks_catch_a_broken_copy(old, new, expected):
    text = dockerfile_text()
    assert old in text, f"the breakage no longer applies: {old!r}"
    problems = dockerfile_problems(text.replace(old, new, 1), console_scripts())
    assert any(expected in p for p in problems), problems


def test_dockerfile_copies_what_pip_install_reads():
    sources = copied_sources(dockerfile_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    readme = project["readme"] if isinstance(project["readme"], str) else project["readme"]["file"]
    assert {"pyproject.toml", readme, "src"} <= set(sources)


def test_build_context_holds_every_copied_source_and_no_key():
    patterns = dockerignore_patterns()
    for source in copied_sources(dockerfile_text()):
        assert in_build_context(patterns, source), source
    assert in_build_context(patterns, "src/cannonade/cli/main.py")
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/unit/test_deploy.py",
        "deploy/k8s/keys/hq.key_secret",
        "src/cannonade/hq.key_secret",
        "src/agent.key",
        "src/cannonade/__pycache__/config.cpython-311.pyc",
        "src/cannonade.egg-info/PKG-INFO",
        "cannonade.db",
        "src/cannonade.db-wal",
    ):
        assert not in_build_context(patterns, path), path


def test_dockerignore_matcher_can_fail():
    assert in_build_context(["*", "!src"], "src/x.key_secret")
    assert not in_build_context(["*", "!src", "**/*.key_secret"], "src/a/x.key_secret")
    assert not in_build_context(["src"], "src/a/b.py")
    assert in_build_context(["*.db"], "sub/a.db")  # '*' does not cross a folder
    assert not in_build_context(["**/*.db"], "a.db")
