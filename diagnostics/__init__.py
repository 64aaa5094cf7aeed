"""The shipped checks of pytest-kvmi, installed as ``pytest_kvmi.diagnostics``.

They see only fixtures (``kvmi``, which runs one check on the run's shared clients), so the same
checks run against a real VM and vault and against the embedded emulator.
"""
