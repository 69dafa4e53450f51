"""deploy/kubernetes/ is valid Kubernetes and agrees with the code it deploys.

No cluster runs where the tests run, so these read the manifests: every document against the
official schemas of pinned Kubernetes versions in strict mode (kubernetes-validate), then what a
schema cannot know: the settings, routes, CLI commands, image and uid they name exist in this
repository, the objects refer to each other correctly, and every container is locked down.
Each check is a function returning what is wrong, so that the tests at the end can show it
catching a broken manifest.
"""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import kubernetes_validate
import pytest
from litestar.routes import HTTPRoute

from gateway.cli import cli
from gateway.settings import ENV_PREFIX, Settings, load_settings
from gateway.web.app import create_app
from tests.support.manifests import (
    DEPENDENT_VARIABLE,
    KUSTOMIZATION,
    MANIFESTS,
    ROOT,
    SECRET_TEMPLATES,
    Document,
    container,
    containers,
    documents_of,
    effective_env,
    kustomization,
    manifest_files,
    migrate_script,
    pod_spec,
    resource_documents,
    resource_files,
    secret_data,
    the,
    workloads,
)
from tests.support.postgrest import POSTGREST_VERSION

#: The oldest Kubernetes these manifests promise to work on, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
PLACEHOLDER = "REPLACE-ME"
SETTING_VARIABLES = {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def gateway_container() -> Document:
    return container(the("Deployment", "gateway"), "gateway")


def gateway_env() -> dict[str, str]:
    return effective_env(resource_documents(), gateway_container())


def postgrest_env() -> dict[str, str]:
    return effective_env(
        resource_documents(), container(the("Deployment", "postgrest"), "postgrest")
    )


# --- the checks: each returns what is wrong ---------------------------------------------------


def schema_errors(document: Document, version: str) -> list[str]:
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.path)
        return [f"{document.get('kind')}: {where}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [exc.message]
    return []


def unknown_gateway_variables(documents: list[Document], text: str) -> list[str]:
    """GATEWAY_* names, anywhere in the text or set in a container, that no setting reads."""
    named = set(re.findall(r"\bGATEWAY_[A-Z0-9_]+", text))
    for workload in workloads(documents):
        for item in containers(workload):
            named |= {key for key in effective_env(documents, item) if key.startswith(ENV_PREFIX)}
    return sorted(named - SETTING_VARIABLES)


def hardening_problems(workload: Document) -> list[str]:
    """Containers that could run as root, write their root filesystem or gain privileges, and
    volumes other than scratch space (no hostPath, no claim: nothing shared on disk)."""
    pod = pod_spec(workload).get("securityContext", {})
    problems = []
    for item in containers(workload):
        own = item.get("securityContext", {})
        name = f"{workload['metadata']['name']}/{item['name']}"
        if not own.get("runAsNonRoot", pod.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not true")
        if own.get("runAsUser", pod.get("runAsUser")) in (None, 0):
            problems.append(f"{name}: no non-zero runAsUser")
        if own.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if own.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if own.get("capabilities", {}).get("drop") != ["ALL"] or own["capabilities"].get("add"):
            problems.append(f"{name}: capabilities are not exactly drop ALL")
        if own.get("privileged"):
            problems.append(f"{name}: privileged")
    for volume in pod_spec(workload).get("volumes", []):
        if set(volume) != {"name", "emptyDir"}:
            problems.append(
                f"{workload['metadata']['name']}: volume {volume['name']} is no emptyDir"
            )
    spec = pod_spec(workload)
    if any(spec.get(field) for field in ("hostNetwork", "hostPID", "hostIPC")):
        problems.append(f"{workload['metadata']['name']}: shares a host namespace")
    return problems


def unpinned_images(documents: list[Document], images: list[Document]) -> list[str]:
    """Images with no tag or digest, or :latest, after the kustomization's `images` apply."""
    overrides = {entry["name"]: entry for entry in images}
    problems = []
    for workload in workloads(documents):
        for item in containers(workload):
            image = item["image"]
            override = overrides.get(image.split("@")[0].rsplit(":", 1)[0], {})
            if "@sha256:" in image or "digest" in override:
                continue
            tag = override.get("newTag") or (image.rsplit(":", 1)[1] if ":" in image else "")
            if not tag or tag == "latest":
                problems.append(f"{item['name']}: {image} is not pinned")
    return problems


def command_path(tokens: list[str]) -> tuple[click.Command, list[str]]:
    """The click command ``gateway ...`` names (as `gateway --help` lists them) and the rest."""
    command: click.Command = cli
    rest = list(tokens)
    while rest and isinstance(command, click.Group) and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


def cli_problems(script: str) -> list[str]:
    """Each `gateway ...` in a shell script must be a command, with only options it declares."""
    problems = []
    for line in re.split(r"&&|\|\||[;|\n]", script):
        tokens = shlex.split(line)
        if not tokens or tokens[0] != "gateway":
            continue
        command, rest = command_path(tokens[1:])
        if isinstance(command, click.Group):
            problems.append(f"{line.strip()!r}: `gateway {' '.join(tokens[1:])}` is no command")
            continue
        declared = {opt for param in command.params for opt in param.opts}
        problems += [
            f"{line.strip()!r}: no option {token}"
            for token in rest
            if token.startswith("-") and token.split("=")[0] not in declared
        ]
    return problems


def dangling_references(documents: list[Document]) -> list[str]:
    """secretKeyRef and configMapRef naming no object or key; $(NAME) used before it is set."""
    problems = []
    secrets = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Secret"}
    maps = {d["metadata"]["name"] for d in documents if d["kind"] == "ConfigMap"}
    for workload in workloads(documents):
        for item in containers(workload):
            for source in item.get("envFrom", []):
                if source["configMapRef"]["name"] not in maps:
                    problems.append(f"{item['name']}: no ConfigMap {source['configMapRef']}")
            defined: set[str] = set()
            for entry in item.get("env", []):
                for used in DEPENDENT_VARIABLE.findall(entry.get("value", "")):
                    if used not in defined:
                        problems.append(f"{item['name']}: {entry['name']} uses $({used}) unset")
                reference = entry.get("valueFrom", {}).get("secretKeyRef")
                if reference is not None:
                    secret = secrets.get(reference["name"], {})
                    if reference["key"] not in secret.get("stringData", {}):
                        problems.append(f"{item['name']}: no Secret key {reference}")
                defined.add(entry["name"])
    return problems


def selector_problems(documents: list[Document]) -> list[str]:
    """Services, budgets and policies must select the pods they are about."""
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in documents
        if d["kind"] == "Deployment"
    }

    def selects(selector: dict[str, str], name: str) -> bool:
        return bool(selector) and selector.items() <= pods.get(name, {}).items()

    problems = []
    for name in pods:
        deployment = the("Deployment", name, documents)
        if deployment["spec"]["selector"]["matchLabels"] != pods[name]:
            problems.append(f"Deployment {name}: selector is not its pods' labels")
        if not selects(the("Service", name, documents)["spec"]["selector"], name):
            problems.append(f"Service {name} selects no pod of Deployment {name}")
    budget = the("PodDisruptionBudget", "gateway", documents)["spec"]["selector"]["matchLabels"]
    if not selects(budget, "gateway"):
        problems.append("the PodDisruptionBudget does not select the gateway's pods")
    (policy,) = [d for d in documents if d["kind"] == "NetworkPolicy"]
    if not selects(policy["spec"]["podSelector"]["matchLabels"], "postgrest"):
        problems.append("the NetworkPolicy does not select PostgREST's pods")
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
    if not peers or not all(
        set(peer) == {"podSelector"} and selects(peer["podSelector"]["matchLabels"], "gateway")
        for peer in peers
    ):
        problems.append("the NetworkPolicy lets in more than the gateway's pods")
    return problems


# --- every document is Kubernetes -----------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", resource_files(), ids=lambda path: path.name)
def test_every_document_is_valid_kubernetes_in_strict_mode(path: Path, version: str) -> None:
    documents = documents_of(path)

    assert documents
    assert [error for document in documents for error in schema_errors(document, version)] == []


def test_the_manifests_hold_what_a_deployment_of_n_replicas_needs() -> None:
    kinds = sorted(
        (document["kind"], document["metadata"]["name"]) for document in resource_documents()
    )

    assert kinds == [
        ("ConfigMap", "gateway-settings"),
        ("Deployment", "gateway"),
        ("Deployment", "postgrest"),
        ("HorizontalPodAutoscaler", "gateway"),
        ("Job", "gateway-migrate"),
        ("Namespace", "postgrest-gateway"),
        ("NetworkPolicy", "postgrest-from-gateway-only"),
        ("PodDisruptionBudget", "gateway"),
        ("Secret", "gateway"),
        ("Secret", "postgrest"),
        ("Service", "gateway"),
        ("Service", "postgrest"),
    ]


def test_the_kustomization_lists_every_file_but_the_secret_templates() -> None:
    listed = kustomization()["resources"]
    files = {path.name for path in manifest_files()} - {KUSTOMIZATION, SECRET_TEMPLATES}

    assert sorted(listed) == sorted(files)
    assert len(listed) == len(set(listed))
    assert kustomization()["namespace"] == the("Namespace", "postgrest-gateway")["metadata"]["name"]
    assert {d["kind"] for d in documents_of(MANIFESTS / SECRET_TEMPLATES)} == {"Secret"}


def test_every_secret_value_is_an_obvious_placeholder() -> None:
    secrets = documents_of(MANIFESTS / SECRET_TEMPLATES)
    text = (MANIFESTS / SECRET_TEMPLATES).read_text()

    assert all("data" not in secret for secret in secrets), "stringData only, readable"
    values = [value for secret in secrets for value in secret["stringData"].values()]
    assert values
    assert all(PLACEHOLDER in value for value in values)
    assert "kubectl -n postgrest-gateway create secret generic" in text
    # Nothing else holds a secret: no Secret outside the templates, no password in a value.
    for path in manifest_files():
        if path.name != SECRET_TEMPLATES:
            assert "kind: Secret" not in path.read_text()
            assert not re.search(r"://[^/\s:@]+:(?!\$\()[^@\s]+@", path.read_text()), path.name


# --- they agree with the gateway --------------------------------------------------------------


def test_every_gateway_variable_is_a_setting() -> None:
    text = "\n".join(path.read_text() for path in manifest_files())

    assert unknown_gateway_variables(resource_documents(), text) == []


@pytest.mark.parametrize(
    ("kind", "name", "item"),
    [
        ("Deployment", "gateway", "gateway"),
        ("Job", "gateway-migrate", "migrate"),
    ],
)
def test_the_gateway_containers_settings_are_valid(
    kind: str, name: str, item: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = resource_documents()
    for key, value in effective_env(documents, container(the(kind, name), item)).items():
        if key.startswith(ENV_PREFIX):
            monkeypatch.setenv(key, value)

    settings = load_settings()

    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.issuer.startswith("https://")
    assert settings.cookie_secure


def test_the_job_and_every_replica_share_one_store_and_one_keystore() -> None:
    job = container(the("Job", "gateway-migrate"), "migrate")
    gateway = gateway_container()
    shared = ("GATEWAY_DATABASE_URL", "GATEWAY_KEYS_PASSPHRASE")

    def sources(item: Document) -> dict[str, Any]:
        return {entry["name"]: entry.get("valueFrom") for entry in item["env"]}

    assert job["envFrom"] == gateway["envFrom"]
    assert all(sources(job)[name] == sources(gateway)[name] is not None for name in shared)
    assert gateway_env()["GATEWAY_KEYSTORE"] == "database"
    assert gateway_env()["GATEWAY_LOG_FORMAT"] == "json"
    # No keys volume, nothing shared on disk: only a scratch /tmp (the metrics files).
    assert pod_spec(the("Deployment", "gateway"))["volumes"] == [
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "32Mi"}}
    ]
    assert gateway["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert "volumes" not in pod_spec(the("Job", "gateway-migrate"))


def test_the_probes_ask_routes_the_gateway_serves_on_its_port() -> None:
    gateway = gateway_container()
    ports = {port["name"]: port["containerPort"] for port in gateway["ports"]}
    app = create_app(Settings())
    get_routes = {
        route.path
        for route in app.routes
        if isinstance(route, HTTPRoute) and "GET" in route.methods
    }
    probes = {name: gateway[name]["httpGet"] for name in ("startupProbe", "livenessProbe")}
    probes["readinessProbe"] = gateway["readinessProbe"]["httpGet"]

    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert probe["path"] in get_routes
        assert ports[probe["port"]] == int(gateway_env()["GATEWAY_PORT"])


def test_metrics_have_a_named_port_of_their_own_that_the_service_does_not_expose() -> None:
    ports = {port["name"]: port["containerPort"] for port in gateway_container()["ports"]}
    service_ports = the("Service", "gateway")["spec"]["ports"]

    assert ports["metrics"] == int(gateway_env()["GATEWAY_METRICS_PORT"])
    assert ports["metrics"] != ports["http"]
    assert gateway_env()["GATEWAY_METRICS_HOST"] == "0.0.0.0"
    assert [port["targetPort"] for port in service_ports] == ["http"]


def test_the_migrate_job_runs_real_commands_in_order() -> None:
    script = migrate_script()
    steps = ["gateway db upgrade", "gateway keys init", "gateway postgrest bootstrap"]

    assert cli_problems(script) == []
    assert [script.index(step) for step in steps] == sorted(script.index(s) for s in steps)
    assert script.startswith("set -e;")
    assert "--jwks-in-database" in script
    assert "--check-sessions" in script
    # The password goes through stdin, never the command line; $( would be Kubernetes'.
    assert re.search(
        r"printf '%s' \"\$AUTHENTICATOR_PASSWORD\"\s*\|\s*"
        r"gateway postgrest bootstrap --authenticator-password-stdin",
        script,
    )
    assert "$(" not in script


def test_images_are_pinned_and_the_gateway_is_this_release() -> None:
    images = kustomization()["images"]
    (gateway_image,) = images
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

    assert unpinned_images(resource_documents(), images) == []
    assert gateway_container()["image"] == gateway_image["name"]
    assert gateway_image["newTag"] == version
    postgrest_image = container(the("Deployment", "postgrest"), "postgrest")["image"]
    assert postgrest_image == f"postgrest/postgrest:v{POSTGREST_VERSION}"


def test_every_container_runs_locked_down() -> None:
    documents = resource_documents()
    dockerfile_user = re.findall(r"^USER (\d+)", (ROOT / "Dockerfile").read_text(), re.M)[-1]

    assert [problem for w in workloads(documents) for problem in hardening_problems(w)] == []
    for workload in workloads(documents):
        assert pod_spec(workload)["automountServiceAccountToken"] is False
        assert all("resources" in item for item in containers(workload))
    for name in ("gateway", "gateway-migrate"):
        kind = "Deployment" if name == "gateway" else "Job"
        assert str(pod_spec(the(kind, name))["securityContext"]["runAsUser"]) == dockerfile_user


def test_the_objects_refer_to_each_other() -> None:
    documents = resource_documents()
    autoscaler = the("HorizontalPodAutoscaler", "gateway")["spec"]

    assert dangling_references(documents) == []
    assert selector_problems(documents) == []
    assert autoscaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    assert autoscaler["minReplicas"] >= the("Deployment", "gateway")["spec"]["replicas"] == 3


# --- they agree with PostgREST ----------------------------------------------------------------


def test_postgrest_reads_its_jwks_from_the_database_and_checks_sessions() -> None:
    env = postgrest_env()

    assert env["PGRST_DB_CONFIG"] == "true"
    assert env["PGRST_DB_CHANNEL_ENABLED"] == "true"
    assert env["PGRST_DB_PRE_REQUEST"] == "auth.check_session"
    assert "PGRST_JWT_SECRET" not in env
    assert "volumes" not in pod_spec(the("Deployment", "postgrest"))


def test_postgrest_logs_in_to_the_store_database_as_the_role_bootstrap_makes() -> None:
    settings = Settings()  # the manifests set no role variable: bootstrap uses the defaults
    uri = urlsplit(postgrest_env()["PGRST_DB_URI"])
    store = urlsplit(gateway_env()["GATEWAY_DATABASE_URL"])
    raw = container(the("Deployment", "postgrest"), "postgrest")["env"]
    raw_uri = next(entry["value"] for entry in raw if entry["name"] == "PGRST_DB_URI")

    # NOTIFY pgrst after a rotation goes to the store: it must be PostgREST's database.
    assert (uri.hostname, uri.port, uri.path) == (store.hostname, store.port, store.path)
    assert "GATEWAY_POSTGREST_NOTIFY_URL" not in gateway_env()
    assert uri.username == settings.authenticator_role
    assert uri.password == secret_data(resource_documents(), "postgrest")["authenticator-password"]
    assert ":$(AUTHENTICATOR_PASSWORD)@" in raw_uri
    assert postgrest_env()["PGRST_DB_ANON_ROLE"] == settings.anon_role
    assert postgrest_env()["PGRST_DB_SCHEMAS"].split(",") == settings.postgrest_schemas


def test_postgrest_is_internal_and_only_the_gateway_may_reach_it() -> None:
    service = the("Service", "postgrest")["spec"]
    gateway_upstream = urlsplit(gateway_env()["GATEWAY_UPSTREAM_URL"])
    (policy,) = [d for d in resource_documents() if d["kind"] == "NetworkPolicy"]
    openapi = postgrest_env()["PGRST_OPENAPI_SERVER_PROXY_URI"]

    assert service["type"] == "ClusterIP"
    assert (gateway_upstream.hostname, gateway_upstream.port) == (
        "postgrest",
        service["ports"][0]["port"],
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert openapi == gateway_env()["GATEWAY_ISSUER"] + Settings().proxy_prefix


# --- the checks catch broken manifests --------------------------------------------------------


def broken_gateway(change: Any) -> list[Document]:
    """All the documents, with ``change`` applied to a copy of the gateway Deployment."""
    documents = copy.deepcopy(resource_documents())
    change(the("Deployment", "gateway", documents))
    return documents


def test_the_schema_refuses_an_unknown_field_and_an_unknown_kind() -> None:
    def typo(deployment: Document) -> None:
        container(deployment, "gateway")["readinessprobe"] = {"httpGet": {"path": "/readyz"}}

    deployment = the("Deployment", "gateway", broken_gateway(typo))
    unknown_kind = {"apiVersion": "v1", "kind": "Servce", "metadata": {"name": "x"}}

    assert schema_errors(the("Deployment", "gateway"), KUBERNETES_VERSIONS[0]) == []
    (error,) = schema_errors(deployment, KUBERNETES_VERSIONS[0])
    assert "readinessprobe" in error
    assert schema_errors(unknown_kind, KUBERNETES_VERSIONS[0]) != []


def test_an_unknown_gateway_variable_is_named() -> None:
    def misspell(deployment: Document) -> None:
        container(deployment, "gateway")["env"].append({"name": "GATEWAY_ISUER", "value": "x"})

    assert "GATEWAY_ISUER" in unknown_gateway_variables(broken_gateway(misspell), "")


def test_a_container_that_may_write_its_root_or_run_as_root_is_named() -> None:
    def loosen(deployment: Document) -> None:
        deployment["spec"]["template"]["spec"]["securityContext"] = {}
        del container(deployment, "gateway")["securityContext"]["readOnlyRootFilesystem"]
        deployment["spec"]["template"]["spec"]["volumes"].append(
            {"name": "keys", "hostPath": {"path": "/keys"}}
        )

    problems = hardening_problems(the("Deployment", "gateway", broken_gateway(loosen)))

    assert problems == [
        "gateway/gateway: runAsNonRoot is not true",
        "gateway/gateway: no non-zero runAsUser",
        "gateway/gateway: readOnlyRootFilesystem is not true",
        "gateway: volume keys is no emptyDir",
    ]


def test_a_latest_or_untagged_image_is_named() -> None:
    def latest(deployment: Document) -> None:
        container(deployment, "gateway")["image"] = "postgrest-gateway:latest"

    assert unpinned_images(broken_gateway(latest), []) != []
    assert unpinned_images(resource_documents(), []) == [
        "gateway: postgrest-gateway is not pinned",
        "migrate: postgrest-gateway is not pinned",
    ]


def test_a_command_or_option_the_cli_lacks_is_named() -> None:
    assert cli_problems("gateway db upgrade && gateway keys init") == []
    assert cli_problems("set -e; gateway db migrate") == [
        "'gateway db migrate': `gateway db migrate` is no command"
    ]
    assert cli_problems("printf x | gateway postgrest bootstrap --no-such-flag") == [
        "'gateway postgrest bootstrap --no-such-flag': no option --no-such-flag"
    ]


def test_a_reference_to_a_missing_secret_key_or_a_late_variable_is_named() -> None:
    def dangle(deployment: Document) -> None:
        env = container(deployment, "gateway")["env"]
        env.insert(0, {"name": "GATEWAY_ISSUER", "value": "https://$(LATER)"})
        env.append({"name": "LATER", "value": "x"})
        env.append({"name": "X", "valueFrom": {"secretKeyRef": {"name": "gateway", "key": "nope"}}})

    problems = dangling_references(broken_gateway(dangle))

    assert len(problems) == 2
    assert "uses $(LATER) unset" in problems[0]
    assert "'key': 'nope'" in problems[1]


def test_a_service_or_policy_that_selects_the_wrong_pods_is_named() -> None:
    def relabel(deployment: Document) -> None:
        deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] = "other"

    problems = selector_problems(broken_gateway(relabel))

    assert "Deployment gateway: selector is not its pods' labels" in problems
    assert "Service gateway selects no pod of Deployment gateway" in problems
    assert "the NetworkPolicy lets in more than the gateway's pods" in problems
