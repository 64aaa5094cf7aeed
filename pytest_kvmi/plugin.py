"""pytest entry point (``-p no:kvmi`` disables it): options, fixtures, the shipped checks.

A thin layer: the settings come from :mod:`pytest_kvmi.options`, the checks from
:mod:`pytest_kvmi.checks`, the emulator from :mod:`pytest_kvmi.emulated`. Only the standard
library, pytest and the standard-library-only options module are imported at top level: every
pytest run in an environment where pytest-kvmi is installed imports this module.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_kvmi.options import COMMAND_LINE, DEMO, OPTIONS, SWITCH_RULE, Resolved, resolve

if TYPE_CHECKING:
    import responses

    from pytest_kvmi.checks import Probe, Verdict
    from pytest_kvmi.emulated import EmulatedTarget
    from pytest_kvmi.emulator import Emulator
    from pytest_kvmi.emulator.servers import LoopbackServers
    from pytest_kvmi.settings import SecretRef, Settings
    from pytest_kvmi.token import AccessToken
    from pytest_kvmi.vault import VaultClient

MARKERS = {
    "kvmi": "a shipped pytest-kvmi check",
    "kvmi_imds": "shipped checks of IMDS and the managed identity",
    "kvmi_token": "shipped checks of the token's audience, tenant and VM",
    "kvmi_secrets": "shipped checks of what the identity may and may not read",
    "kvmi_emulator": "shipped checks that only run against the emulator",
    "kv_emulator": "kv_emulator(scenario=PATH): set up the kv_emulator fixture from a file",
}
SHOWN_SETTINGS = (
    "vault",
    "secret",
    "forbidden_secret",
    "client_id",
    "object_id",
    "msi_res_id",
    "imds_endpoint",
    "cloud",
    "timeout",
    "wait",
    "ca_bundle",
    "report",
)
PROPERTY = "kvmi"
"""The user property under which each shipped check records its verdict (travels with xdist)."""


@dataclass
class Run:
    """What this pytest run checks, validated at configure time."""

    resolved: Resolved
    settings: Settings
    readable: tuple[SecretRef, ...]
    forbidden: tuple[SecretRef, ...]
    wait: float
    scenario: str | None
    scenario_emulator: Emulator | None = None
    """The emulator the scenario file built when it was checked, kept for the session."""
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def emulated(self) -> bool:
        return self.scenario is not None

    @property
    def active(self) -> bool:
        return self.emulated or self.settings.vault is not None


RUN = pytest.StashKey[Run]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kvmi", "Key Vault managed identity checks (pytest-kvmi)")
    for option in OPTIONS:
        where = f" [env {option.env}, ini {option.ini}]"
        kwargs: dict[str, Any] = {"dest": option.dest, "help": option.help + where}
        if option.switch:
            kwargs["action"] = "store_true"
        else:
            kwargs.update(metavar=option.metavar, default=None)
        if option.repeatable:
            kwargs["action"] = "append"
        group.addoption(option.flag, **kwargs)
        if option.switch:
            parser.addini(option.ini, option.help, type="bool", default=False)
        elif option.repeatable:
            parser.addini(option.ini, option.help, type="linelist")
        else:
            parser.addini(option.ini, option.help, type="string")


def _where(resolved: Resolved, *names: str) -> str:
    """``--kv-name (source)`` for the options a refused value came from."""
    given = [name for name in names if resolved[name].given] or list(names)
    return ", ".join(f"--kv-{name.replace('_', '-')} ({resolved[name].source})" for name in given)


@contextmanager
def _rule_of(resolved: Resolved, *names: str) -> Iterator[None]:
    """Turn a broken rule into a usage error that names the option and where it was set."""
    from pytest_kvmi.settings import SettingsError

    try:
        yield
    except SettingsError as error:
        raise pytest.UsageError(f"{_where(resolved, *names)}: {error}") from None


def _refuse_empty_and_unknown(resolved: Resolved) -> None:
    """An option given but empty (``--kv-vault=`` from an unset variable), or a switch set to
    a word that is not on or off, would otherwise be silently ignored."""
    for option in OPTIONS:
        value = resolved[option.name]
        if not value.given:
            continue
        if option.switch and not isinstance(value.value, bool):
            raise pytest.UsageError(f"{_where(resolved, option.name)}: {SWITCH_RULE}")
        items = value.value if isinstance(value.value, tuple) else (value.value,)
        if any(isinstance(item, str) and not item.strip() for item in items) or not items:
            raise pytest.UsageError(f"{_where(resolved, option.name)}: given, but empty")


def _seconds(resolved: Resolved, name: str, default: float, minimum: float) -> float:
    from pytest_kvmi.settings import check_seconds

    text = resolved.text(name)
    with _rule_of(resolved, name):
        try:
            seconds = float(text) if text is not None else default
        except ValueError:
            raise pytest.UsageError(
                f"{_where(resolved, name)}: {text!r} is not a number of seconds"
            ) from None
        return check_seconds(name, seconds, minimum=minimum)


def _build_run(resolved: Resolved) -> Run:
    """Validate every setting before any network call; a bad one is a usage error that quotes
    the rule and says where the value came from."""
    from pytest_kvmi.settings import (
        DEFAULT_RETRY_BUDGET,
        DEFAULT_TIMEOUT,
        IdentitySelector,
        Settings,
        check_ca_bundle,
        parse_cloud,
        parse_secret,
        parse_vault,
        resolve_imds_endpoint,
    )

    _refuse_empty_and_unknown(resolved)
    scenario = resolved.text("scenario") or (DEMO if resolved["emulator"].value else None)
    scenario_emulator = _load_scenario(scenario) if scenario not in (None, DEMO) else None
    with _rule_of(resolved, "cloud"):
        cloud = parse_cloud(resolved.text("cloud") or "public")
    vault = resolved.text("vault")
    with _rule_of(resolved, "vault"):
        parsed = parse_vault(vault, cloud if resolved["cloud"].given else None) if vault else None
    if scenario is not None and parsed is not None:
        if parsed.name is None:
            raise pytest.UsageError(f"{_where(resolved, 'vault')}: with --kv-emulator, a name")
        vault = parsed.name  # the emulator answers at the cloud's own URL for this name
    ids = ("client_id", "object_id", "msi_res_id")
    with _rule_of(resolved, *ids):
        IdentitySelector(*(resolved.text(name) for name in ids))
    with _rule_of(resolved, "imds_endpoint"):
        resolve_imds_endpoint(resolved.text("imds_endpoint"), os.environ)
    ca_bundle = resolved.text("ca_bundle")
    with _rule_of(resolved, "ca_bundle"):
        if ca_bundle is not None:
            check_ca_bundle(ca_bundle)
    with _rule_of(resolved, "secret"):
        readable = tuple(parse_secret(s) for s in resolved.items("secret"))
    with _rule_of(resolved, "forbidden_secret"):
        forbidden = tuple(parse_secret(s) for s in resolved.items("forbidden_secret"))
    timeout = _seconds(resolved, "timeout", DEFAULT_TIMEOUT, minimum=0.01)
    retry_budget = _seconds(resolved, "retry_budget", DEFAULT_RETRY_BUDGET, minimum=0)
    wait = _seconds(resolved, "wait", 0.0, minimum=0)
    if scenario == DEMO:
        from pytest_kvmi.emulated import demo_names

        vault, readable, forbidden = demo_names(vault, readable, forbidden)
    with _rule_of(resolved, *(o.name for o in OPTIONS)):  # validated above: cannot fail
        settings = Settings.build(
            vault=vault or None,
            # A vault URL decides the cloud (it may be reduced to a name just above).
            cloud=resolved.text("cloud") or (parsed.cloud.name if parsed else None),
            client_id=resolved.text("client_id"),
            object_id=resolved.text("object_id"),
            msi_res_id=resolved.text("msi_res_id"),
            imds_endpoint=resolved.text("imds_endpoint"),
            timeout=timeout,
            retry_budget=retry_budget,
            ca_bundle=ca_bundle,
        )
    return Run(resolved, settings, readable, forbidden, wait, scenario, scenario_emulator)


def _load_scenario(path: str) -> Emulator:
    """The emulator a scenario file sets up; one that does not load is a usage error, before
    any test runs."""
    from pytest_kvmi.emulator import Emulator

    if not os.path.isfile(path):
        raise pytest.UsageError(f"--kv-scenario {path!r}: a scenario file (TOML or JSON)")
    try:
        return Emulator.from_scenario(path)
    except (ValueError, LookupError) as error:  # ScenarioError is a ValueError
        raise pytest.UsageError(f"--kv-scenario {path!r}: {error}") from None


def _diagnostics_file() -> Path:
    """The shipped checks, wherever the package is installed (wheel or editable), or, when
    pytest_kvmi is imported from a source checkout, the checkout's own diagnostics/."""
    spec = importlib.util.find_spec("pytest_kvmi.diagnostics")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)))
    else:
        folder = Path(__file__).resolve().parent.parent / "diagnostics"
    return folder / "test_kvmi_checks.py"


RESOLVED = pytest.StashKey[Resolved]()
CHECKS_FILE = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    resolved = Resolved(
        {
            option.name: resolve(option, config.getoption(option.dest), os.environ, config.getini)
            for option in OPTIONS
        }
    )
    config.stash[RESOLVED] = resolved
    if not any(value.given for value in resolved.values.values()):
        return  # nothing asked of pytest-kvmi: no work on this run (see _run)
    run = _run(config)
    config.pluginmanager.register(RunReporter(config, run), "kvmi-run")
    asked = any(resolved[name].source == COMMAND_LINE for name in ("vault", "emulator", "scenario"))
    no_paths = config.args_source is not pytest.Config.ArgsSource.ARGS
    if (asked and no_paths) or resolved["checks"].value:
        checks = config.stash[CHECKS_FILE] = _diagnostics_file()
        config.args = [str(checks)] if asked and no_paths else [*config.args, str(checks)]


def _run(config: pytest.Config) -> Run:
    """This run's validated settings, built at configure time when any kvmi setting is given,
    else on first use by a fixture (every pytest run of the environment loads this plugin)."""
    run = config.stash.get(RUN, None)
    if run is None:
        run = config.stash[RUN] = _build_run(config.stash[RESOLVED])
    return run


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = config.stash.get(RUN, None)  # built only if some kvmi setting is given
    if run is None or not run.active:
        return []
    if run.emulated:
        mode = "embedded emulator" + ("" if run.scenario == DEMO else f" ({run.scenario})")
    else:
        mode = f"live, IMDS at {run.settings.imds_endpoint}"
    vault = run.settings.vault.url if run.settings.vault else "(the scenario's first vault)"
    lines = [f"kvmi: {mode}; vault {vault}; identity {run.settings.identity.describe()}"]
    lines.extend(f"kvmi: {line}" for line in run.resolved.header(SHOWN_SETTINGS))
    return lines


class DiagnosticsModule(pytest.Module):
    """The shipped checks' module, collected by its own names whatever the user's
    ``python_functions`` / ``python_classes`` say."""

    def funcnamefilter(self, name: str) -> bool:
        return name.startswith("test_")

    def classnamefilter(self, name: str) -> bool:
        return False


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(
    module_path: Path, parent: pytest.Collector
) -> pytest.Module | None:
    if module_path == parent.config.stash.get(CHECKS_FILE, None):
        # Outside the rootdir pytest would derive an empty id; give the checks stable, short
        # ids (kvmi::test_secret_readable[db]) for -k, --deselect, caches and xdist alike.
        return DiagnosticsModule.from_parent(parent, path=module_path, nodeid="kvmi")
    return None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One ``secret-readable`` / ``secret-denied`` test per secret named in the options."""
    for argname, field_name in (
        ("kvmi_readable_secret", "readable"),
        ("kvmi_forbidden_secret", "forbidden"),
    ):
        if argname in metafunc.fixturenames:
            secrets: tuple[SecretRef, ...] = getattr(_run(metafunc.config), field_name)
            ids = [str(ref) for ref in secrets] or ["none"]
            metafunc.parametrize(argname, list(secrets) or [None], ids=ids)


# --- session fixtures: the target the checks and users' tests talk to ---------------------


@dataclass
class Target:
    """Clients for the configured vault: live, or the session's emulator in-process."""

    settings: Settings
    probe: Probe
    emulated: EmulatedTarget | None


@pytest.fixture(scope="session")
def kvmi_target(pytestconfig: pytest.Config) -> Iterator[Target]:
    """The clients every shipped check shares: one token, one vault connection per run."""
    from pytest_kvmi.checks import Probe
    from pytest_kvmi.emulated import demo_target, scenario_target
    from pytest_kvmi.imds import ImdsClient
    from pytest_kvmi.vault import VaultClient

    run = _run(pytestconfig)
    settings, transport, emulated = run.settings, None, None
    timing: dict[str, Callable[..., Any]] = {}
    if run.scenario is not None:
        vault = settings.vault.name if settings.vault else None
        if run.scenario == DEMO:
            emulated = demo_target(settings, vault, run.readable, run.forbidden)
        else:
            assert run.scenario_emulator is not None, "built when the scenario was checked"
            emulated = scenario_target(run.scenario_emulator, vault, run.readable, run.forbidden)
        settings = _with_vault(settings, emulated.vault)
        transport = emulated.emulator.transport()
        clock = emulated.emulator.clock
        # Waiting for propagation moves the emulated clock instead of sleeping.
        timing = {"sleep": clock.advance, "clock": clock.now, "now": clock.now}
    imds = ImdsClient(settings, transport=transport)
    vault_client = (
        VaultClient(settings, imds.token, transport=transport) if settings.vault else None
    )
    probe = Probe(
        settings, imds, vault_client, wait=run.wait, notify=_notifier(pytestconfig), **timing
    )
    yield Target(settings, probe, emulated)
    imds.close()
    if vault_client is not None:
        vault_client.close()


def _with_vault(settings: Settings, name: str) -> Settings:
    from pytest_kvmi.settings import parse_vault

    return replace(settings, vault=parse_vault(name, settings.cloud))


def _notifier(config: pytest.Config) -> Callable[[str], None]:
    """Show progress (waiting for propagation) on the terminal, past output capture."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def notify(message: str) -> None:
        if reporter is None:
            return
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"kvmi: {message}")
        else:
            reporter.write_line(f"kvmi: {message}")

    return notify


@pytest.fixture(scope="session")
def kv_settings(kvmi_target: Target) -> Settings:
    """The validated settings of this run (vault, identity, cloud, endpoints, timeouts)."""
    return kvmi_target.settings


@pytest.fixture(scope="session")
def kv_token(kvmi_target: Target) -> AccessToken:
    """The managed identity's token for the vault's audience (one per run; redacted: its
    raw form only through ``.bearer()``). Fails with the diagnosis if IMDS gives none."""
    verdict = kvmi_target.probe.identity_present()
    token = kvmi_target.probe.token_or_none()
    if token is None:
        pytest.fail(verdict.render(), pytrace=False)
    return token


@pytest.fixture(scope="session")
def kv_vault(kvmi_target: Target) -> VaultClient:
    """A Key Vault client for the configured vault, sharing the run's token and connection."""
    vault = kvmi_target.probe.vault
    if vault is None:
        pytest.fail(
            "kv_vault needs a vault: --kv-vault (env KVMI_VAULT, ini kv_vault) or --kv-emulator",
            pytrace=False,
        )
    return vault


# --- the shipped checks --------------------------------------------------------------------


NOTHING_TO_CHECK = {
    "secret-readable": "no secret to check: give --kv-secret=NAME",
    "secret-denied": "no forbidden secret to check: give --kv-forbidden-secret=NAME",
}


class Checker:
    """What a shipped check calls: runs one check on the run's probe, records the verdict for
    the report, and fails or skips the test with the diagnosis."""

    def __init__(self, target: Target, node: pytest.Item) -> None:
        self._target = target
        self._node = node

    def check(self, check_id: str, secret: SecretRef | None = None) -> None:
        verdict = self._verdict(check_id, secret)
        self._record(verdict)
        from pytest_kvmi.checks import Outcome

        if verdict.outcome is Outcome.FAILED:
            pytest.fail(verdict.render(), pytrace=False)
        if verdict.outcome is Outcome.SKIPPED:
            pytest.skip(verdict.summary)

    def _verdict(self, check_id: str, secret: SecretRef | None) -> Verdict:
        from pytest_kvmi.checks import Outcome, Verdict
        from pytest_kvmi.emulated import role_switch

        probe = self._target.probe
        if check_id in NOTHING_TO_CHECK and secret is None:
            return Verdict(check_id, None, Outcome.SKIPPED, None, NOTHING_TO_CHECK[check_id])
        if check_id == "secret-readable" and secret is not None:
            return probe.secret_readable(secret)
        if check_id == "secret-denied" and secret is not None:
            return probe.secret_denied(secret)
        if check_id == "role-revocation":
            emulated = self._target.emulated
            switch = role_switch(emulated, self._target.settings) if emulated else None
            if emulated and switch is None:
                identity = self._target.settings.identity.describe()
                reason = f"the emulator has no identity {identity}: see identity-present"
                return Verdict(check_id, None, Outcome.SKIPPED, None, reason)
            first = emulated.readable[0] if emulated and emulated.readable else None
            return probe.role_revocation(secret or first, switch)
        runs = {
            "imds-reachable": probe.imds_reachable,
            "identity-present": probe.identity_present,
            "token-audience": probe.token_audience,
            "token-tenant": probe.token_tenant,
            "vm-binding": probe.vm_binding,
        }
        return runs[check_id]()

    def _record(self, verdict: Verdict) -> None:
        row = {
            "id": verdict.check,
            "target": verdict.target,
            "code": verdict.code,
            "summary": verdict.summary,
            "remedy": verdict.remedy,
            "warnings": list(verdict.warnings),
            "steps": list(verdict.steps),
        }
        vault = self._target.settings.vault
        self._node.user_properties.append((PROPERTY, json.dumps(row)))
        self._node.user_properties.append(("kvmi_vault", vault.url if vault else ""))
        if verdict.check == "identity-present":
            identity = self._target.probe.identity_facts()
            self._node.user_properties.append(("kvmi_identity", json.dumps(identity)))
            self._node.user_properties.append(("kvmi_client_id", identity.get("client_id") or ""))


@pytest.fixture
def kvmi(kvmi_target: Target, request: pytest.FixtureRequest) -> Checker:
    """Runs the shipped checks (used by pytest_kvmi/diagnostics)."""
    return Checker(kvmi_target, request.node)


class RunReporter:
    """Collects the shipped checks' verdicts (from this process or xdist workers), prints the
    summary table, and writes the JSON report even when checks fail."""

    def __init__(self, config: pytest.Config, run: Run) -> None:
        self._config = config
        self._run = run

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and not (report.when == "setup" and report.skipped):
            return
        properties = dict(report.user_properties)
        if PROPERTY not in properties:
            return
        row = json.loads(str(properties[PROPERTY]))
        row["outcome"] = report.outcome
        row["duration_s"] = round(report.duration, 4)
        if "kvmi_identity" in properties:
            row["identity"] = json.loads(str(properties["kvmi_identity"]))
        self._run.rows.append(row)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self._run.rows:
            return
        from pytest_kvmi.report import summary_lines

        terminalreporter.write_sep("-", "pytest-kvmi")
        for line in summary_lines(self._run.rows):
            terminalreporter.write_line(line)

    def pytest_sessionfinish(self) -> None:
        path = self._run.resolved.text("report")
        if path is None or hasattr(self._config, "workerinput"):
            return
        from pytest_kvmi.report import build_report

        run = self._run
        vault = run.settings.vault
        report = build_report(
            rows=run.rows,
            vault={
                "url": vault.url if vault else None,
                "name": vault.name if vault else None,
                "cloud": run.settings.cloud.name,
                "emulated": run.emulated,
            },
            selected=run.settings.identity.report(),
        )
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)  # as --junitxml does
        target.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


# --- fixtures for users' own tests against the emulator ------------------------------------


@dataclass
class _Interception:
    emulator: Emulator
    mock: responses.RequestsMock


@pytest.fixture
def _kv_interception(
    request: pytest.FixtureRequest, pytestconfig: pytest.Config
) -> Iterator[_Interception]:
    from pytest_kvmi.emulated import demo_target
    from pytest_kvmi.emulator import Emulator
    from pytest_kvmi.emulator.intercept import intercept

    marker = request.node.get_closest_marker("kv_emulator")
    scenario = marker.kwargs.get("scenario") if marker else None
    if scenario is not None:
        emulator = Emulator.from_scenario(scenario)
    else:
        run = _run(pytestconfig)
        vault = run.settings.vault.name if run.settings.vault else None
        emulator = demo_target(run.settings, vault, run.readable, run.forbidden).emulator
    with intercept(emulator) as mock:
        yield _Interception(emulator, mock)


@pytest.fixture
def kv_emulator(_kv_interception: _Interception) -> Emulator:
    """A fresh emulator for this test (the demo setup, the names from --kv-vault/--kv-secret,
    or ``@pytest.mark.kv_emulator(scenario=PATH)``), with its control API (grant, revoke,
    set_secret, clock.advance, faults...). While the test runs, httpx and ``requests`` calls to
    Azure's real addresses (169.254.169.254, *.vault.azure.net) reach it in-process, without
    sockets; every other address is left alone."""
    return _kv_interception.emulator


@pytest.fixture
def kv_responses(_kv_interception: _Interception) -> responses.RequestsMock:
    """The ``responses`` mock routing ``requests`` to kv_emulator (``.calls`` lists them)."""
    return _kv_interception.mock


@pytest.fixture
def kv_sdk_env(kv_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[LoopbackServers]:
    """kv_emulator on real loopback servers, with the environment set so azure-identity and
    azure-keyvault-secrets (and subprocesses) reach it; yields the servers (``vault_url``,
    ``ca_bundle``, ``imds_endpoint``). Stopped after the test."""
    from pytest_kvmi.emulator.servers import CONFLICTING_ENV

    with kv_emulator.serve() as servers:
        for name in CONFLICTING_ENV:
            monkeypatch.delenv(name, raising=False)
        for name, value in servers.env.items():
            monkeypatch.setenv(name, value)
        yield servers
