"""The official SDK set up as the tests use it: nothing but the managed identity over IMDS."""

from __future__ import annotations

from azure.identity import DefaultAzureCredential


def managed_identity_chain() -> DefaultAzureCredential:
    """DefaultAzureCredential with every credential but managed identity excluded: offline,
    fast, and still going through the chain's IMDS probe as applications do."""
    return DefaultAzureCredential(
        exclude_environment_credential=True,
        exclude_workload_identity_credential=True,
        exclude_shared_token_cache_credential=True,
        exclude_visual_studio_code_credential=True,
        exclude_cli_credential=True,
        exclude_developer_cli_credential=True,
        exclude_powershell_credential=True,
        exclude_interactive_browser_credential=True,
        exclude_broker_credential=True,
    )
