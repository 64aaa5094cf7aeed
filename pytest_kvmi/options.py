"""The plugin's settings at every layer: command line > environment > ini > default.

Like pytest-timeout, one setting has one name at each layer; like pytest-django, the report
header says where each value came from. Standard library only: the plugin imports this module
in every pytest run of an environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

COMMAND_LINE = "command line"
DEFAULT = "default"
DEMO = "demo"
"""``--kv-emulator`` without a scenario file: the built-in demo setup."""
_SWITCH = {"1": True, "true": True, "yes": True, "on": True}
_SWITCH.update({"0": False, "false": False, "no": False, "off": False})
SWITCH_RULE = "one of 1, true, yes, on, 0, false, no, off"


@dataclass(frozen=True)
class Option:
    """One setting and its name at each layer."""

    name: str
    help: str
    metavar: str | None = None
    repeatable: bool = False
    switch: bool = False
    """On or off: a flag on the command line, 1/true/yes in the environment, a bool in ini."""

    @property
    def flag(self) -> str:
        return "--kv-" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        return "kvmi_" + self.name

    @property
    def env(self) -> str:
        return "KVMI_" + self.name.upper()

    @property
    def ini(self) -> str:
        return "kv_" + self.name


OPTIONS: tuple[Option, ...] = (
    Option("vault", "the vault to check: its name or https URL", "NAME|URL"),
    Option(
        "secret",
        "a secret that must be readable, NAME or NAME/VERSION (repeatable; env and ini take a "
        "comma- or line-separated list)",
        "NAME[/VERSION]",
        repeatable=True,
    ),
    Option(
        "forbidden_secret",
        "a secret this identity must NOT read: passes only on 403 ForbiddenByRbac (repeatable)",
        "NAME",
        repeatable=True,
    ),
    Option("client_id", "select a user-assigned identity by client id", "GUID"),
    Option("object_id", "select a user-assigned identity by object (principal) id", "GUID"),
    Option("msi_res_id", "select a user-assigned identity by resource id", "RESOURCE_ID"),
    Option("imds_endpoint", "the IMDS endpoint (default http://169.254.169.254)", "URL"),
    Option("ca_bundle", "a PEM file of CAs to trust for the vault", "PATH"),
    Option("timeout", "seconds any single request may take (default 2)", "SECONDS"),
    Option(
        "retry_budget",
        "seconds the retries of one request may take in all (default 10; IMDS answers 410 for "
        "up to 70 s while it updates)",
        "SECONDS",
    ),
    Option("cloud", "public, usgov or china (default: from the vault URL, else public)", "NAME"),
    Option(
        "wait",
        "keep retrying checks that fail the way role propagation does, up to SECONDS (default 0)",
        "SECONDS",
    ),
    Option(
        "emulator",
        "run against the embedded emulator (the demo setup, or the names given)",
        switch=True,
    ),
    Option(
        "scenario",
        "run against the emulator set up by a scenario file (TOML or JSON); implies --kv-emulator",
        "PATH",
    ),
    Option("report", "write a JSON report of the checks to PATH", "PATH"),
    Option("checks", "also run the shipped checks when test paths are given", switch=True),
)
BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class Value:
    """A resolved setting: what it is and where it came from."""

    value: str | tuple[str, ...] | bool | None
    source: str = DEFAULT

    @property
    def given(self) -> bool:
        return self.source != DEFAULT


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.replace("\n", ",").split(",") if part.strip())


def resolve(
    option: Option,
    command_line: object,
    env: Mapping[str, str],
    ini: Callable[[str], object],
) -> Value:
    """The value of ``option`` from the first layer that sets it."""
    if command_line not in (None, [], False):
        if option.repeatable and isinstance(command_line, list):
            return Value(tuple(str(v) for v in command_line), COMMAND_LINE)
        return Value(True if option.switch else str(command_line), COMMAND_LINE)
    if env.get(option.env, "").strip():
        raw = env[option.env].strip()
        if option.switch:
            # An unrecognised word stays a string, for the plugin to refuse with SWITCH_RULE.
            return Value(_SWITCH.get(raw.lower(), raw), f"env {option.env}")
        return Value(_split(raw) if option.repeatable else raw, f"env {option.env}")
    from_ini = ini(option.ini)
    if option.switch:
        return Value(True, f"ini {option.ini}") if from_ini is True else Value(False)
    if from_ini:
        if option.repeatable:
            items = from_ini if isinstance(from_ini, list) else [str(from_ini)]
            return Value(tuple(p for item in items for p in _split(str(item))), f"ini {option.ini}")
        return Value(str(from_ini).strip(), f"ini {option.ini}")
    return Value(() if option.repeatable else None)


@dataclass(frozen=True)
class Resolved:
    """Every option, resolved."""

    values: Mapping[str, Value] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Value:
        return self.values[name]

    def text(self, name: str) -> str | None:
        value = self.values[name].value
        return value if isinstance(value, str) else None

    def items(self, name: str) -> tuple[str, ...]:
        value = self.values[name].value
        return value if isinstance(value, tuple) else ()

    def header(self, names: Sequence[str]) -> list[str]:
        """``name=value (source)`` for each given setting, for the report header."""
        lines = []
        for name in names:
            value = self.values[name]
            if value.value in (None, (), False):
                continue
            shown = ", ".join(value.value) if isinstance(value.value, tuple) else value.value
            lines.append(f"{name.replace('_', '-')}={shown} ({value.source})")
        return lines
