"""pytest-kvmi: does an Azure VM's managed identity read exactly the Key Vault secrets it should?

This module stays import-light on purpose: pytest imports ``pytest_kvmi.plugin`` (and so this
package) in every run of an environment where pytest-kvmi is installed.
"""

__version__ = "0.1.0.dev0"
