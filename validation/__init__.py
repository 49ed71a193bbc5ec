"""Test tooling kept out of the installed package: drivers of the public simulators the cost models
are validated against (``tests/test_asic_validate.py``, ``benchmarks/asic_validation.py``)."""
