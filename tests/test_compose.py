"""The production shape: docker-compose.yml and the Dockerfile it builds.

The structure is checked with PyYAML; validity with the strict `compose_spec` parser (PyPI package
`compose-spec`, a requirement of the tests), which rejects unknown keys as `docker compose config` does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

APP_SERVICES = ("migrate", "web", "proxy", "worker", "trainer", "beat")
ALL_SERVICES = ("postgres", "redis", *APP_SERVICES)
# Long enough for settings (>= 32 characters); obviously not a real key.
TEST_SECRET_KEY = "test-only-" + "x" * 40

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(ValueError):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation (${VAR}, ${VAR:-default}, ${VAR:?error}, ${VAR:+alt}, $$)."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        is_set = name in env
        has_value = bool(env.get(name))
        present = has_value if op and op.startswith(":") else is_set
        if op in ("-", ":-"):
            return env[name] if present else arg
        if op in ("?", ":?"):
            if not present:
                raise MissingVariable(f"{name}: {arg}")
            return env[name]
        if op in ("+", ":+"):
            return arg if present else ""
        return env.get(name, "")

    return _VARIABLE.sub(replace, value)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["services"]


@pytest.fixture(scope="module")
def resolved(raw: dict[str, Any]) -> dict[str, Any]:
    """The file as Compose sees it with only FTVP_SECRET_KEY set by the operator."""
    return interpolate(raw, {"FTVP_SECRET_KEY": TEST_SECRET_KEY, "FTVP_DB_PASSWORD": "dbpass"})


def option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


# --- structure -----------------------------------------------------------------------------------------


def test_it_defines_the_eight_services(services: dict[str, Any]) -> None:
    assert set(services) == set(ALL_SERVICES)


def test_app_services_run_one_image_built_from_the_dockerfile(services: dict[str, Any]) -> None:
    builds = {name: services[name]["build"] for name in APP_SERVICES}
    images = {name: services[name]["image"] for name in APP_SERVICES}
    assert len({repr(build) for build in builds.values()}) == 1, builds
    assert len(set(images.values())) == 1, images
    build = builds["web"]
    assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    # Every app service also shares the environment and the data volume.
    assert len({repr(services[name]["environment"]) for name in APP_SERVICES}) == 1
    assert all(services[name]["volumes"] == services["web"]["volumes"] for name in APP_SERVICES)


def test_build_args_passed_by_compose_are_declared_in_the_dockerfile(services: dict[str, Any]) -> None:
    declared = set(re.findall(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)", DOCKERFILE.read_text(), re.MULTILINE))
    assert set(services["web"]["build"].get("args", {})) <= declared
    assert {"TORCH_SPEC", "PIP_EXTRA_ARGS"} <= declared


def test_the_image_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert users, "the Dockerfile never drops root"
    assert users[-1] not in {"root", "0", "0:0"}


def test_worker_consumes_the_llm_and_scoring_queues(services: dict[str, Any]) -> None:
    command = services["worker"]["command"]
    assert command[:4] == ["celery", "-A", "workers", "worker"]
    assert set(option(command, "-Q").split(",")) == {"llm", "scoring"}


def test_a_trainer_runs_fine_tuning_jobs_one_at_a_time_on_the_shared_volume(services: dict[str, Any]) -> None:
    trainer = services["trainer"]
    command = trainer["command"]
    assert command[:4] == ["celery", "-A", "workers", "worker"]
    assert option(command, "-Q") == "training" and option(command, "--concurrency") == "1"
    assert trainer["volumes"] == services["worker"]["volumes"] == services["web"]["volumes"]


def test_beat_uses_the_database_scheduler(services: dict[str, Any]) -> None:
    command = services["beat"]["command"]
    assert command[:4] == ["celery", "-A", "workers", "beat"]
    assert option(command, "--scheduler") == "django_celery_beat.schedulers:DatabaseScheduler"


def test_web_serves_the_wsgi_app_with_gunicorn_on_port_8000(resolved: dict[str, Any]) -> None:
    web = resolved["services"]["web"]
    command = web["command"]
    assert command[:2] == ["gunicorn", "ftvp_site.wsgi:application"]
    assert option(command, "--bind") == "0.0.0.0:8000"
    assert [str(port).split(":")[-1] for port in web["ports"]] == ["8000"]


def test_the_capture_proxy_is_an_asgi_process_of_its_own_on_port_8001(resolved: dict[str, Any]) -> None:
    proxy = resolved["services"]["proxy"]
    command = proxy["command"]
    assert command[:2] == ["uvicorn", "ftvp_site.proxy_asgi:application"]
    assert option(command, "--port") == "8001"
    assert [str(port).split(":")[-1] for port in proxy["ports"]] == ["8001"]
    assert "/proxy/health" in " ".join(proxy["healthcheck"]["test"])
    assert proxy["stop_signal"] == "SIGTERM"  # the lifespan's shutdown flushes and drains the spool


def test_migrate_is_a_one_shot_that_the_others_wait_for(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "proxy", "worker", "trainer", "beat"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_backends_and_web_have_healthchecks(services: dict[str, Any]) -> None:
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert "/login/" in " ".join(services["web"]["healthcheck"]["test"])


def test_long_running_services_restart_and_the_worker_gets_time_to_finish(services: dict[str, Any]) -> None:
    for name in ("postgres", "redis", "web", "proxy", "worker", "trainer", "beat"):
        assert services[name]["restart"] in {"always", "unless-stopped"}, name
    grace = re.fullmatch(r"(\d+)([ms])", services["worker"]["stop_grace_period"])
    assert grace
    assert int(grace[1]) * (60 if grace[2] == "m" else 1) >= 30


def test_database_and_redis_urls_point_at_the_compose_services(resolved: dict[str, Any]) -> None:
    env = resolved["services"]["web"]["environment"]
    postgres_env = resolved["services"]["postgres"]["environment"]
    database = urlsplit(env["DATABASE_URL"])
    assert database.scheme in {"postgres", "postgresql"}
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert database.path.lstrip("/") == postgres_env["POSTGRES_DB"]
    assert database.username == postgres_env["POSTGRES_USER"]
    assert database.password == postgres_env["POSTGRES_PASSWORD"]
    redis = urlsplit(env["REDIS_URL"])
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)


def test_a_database_password_from_the_operator_reaches_both_sides(raw: dict[str, Any]) -> None:
    env = {"FTVP_SECRET_KEY": TEST_SECRET_KEY, "FTVP_DB_PASSWORD": "s3cretFromOperator"}
    services = interpolate(raw, env)["services"]
    assert urlsplit(services["worker"]["environment"]["DATABASE_URL"]).password == "s3cretFromOperator"
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "s3cretFromOperator"


def test_production_settings_are_off_debug_and_offline(resolved: dict[str, Any]) -> None:
    env = resolved["services"]["web"]["environment"]
    assert env["FTVP_DEBUG"] == "0"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["FTVP_DATA_DIR"] == "/data"
    assert env["FTVP_ALLOWED_HOSTS"].split(",")[0] == "localhost"


# --- secrets -------------------------------------------------------------------------------------------


def test_the_secret_key_must_come_from_the_operator(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        value = services[name]["environment"]["FTVP_SECRET_KEY"]
        assert re.fullmatch(r"\$\{FTVP_SECRET_KEY:\?[^}]+\}", value), (name, value)


def test_no_secret_like_variable_has_a_literal_value(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"SECRET|TOKEN|API_KEY|PASSWORD", key):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:\?[^}]+\}", str(value)), (name, key)


def test_compose_refuses_to_resolve_without_the_secret_key_or_db_password(raw: dict[str, Any]) -> None:
    with pytest.raises(MissingVariable, match="FTVP_SECRET_KEY"):
        interpolate(raw, {"FTVP_DB_PASSWORD": "dbpass"})
    with pytest.raises(MissingVariable, match="FTVP_DB_PASSWORD"):
        interpolate(raw, {"FTVP_SECRET_KEY": TEST_SECRET_KEY})


# --- validators ----------------------------------------------------------------------------------------


def test_the_compose_spec_parser_accepts_the_file(resolved: dict[str, Any]) -> None:
    import compose_spec

    # The parser does not interpolate: give it the file as Compose would after interpolation.
    compose = compose_spec.PyOptions(apply_merge=True).from_yaml(yaml.safe_dump(resolved))
    compose.validate()
    assert set(compose.service_names()) == set(ALL_SERVICES)
