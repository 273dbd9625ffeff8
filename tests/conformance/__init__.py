"""Conformance suite: RFC 9113 sections 3 to 8 and RFC 7541, driven by raw frames."""

import pytest

# The shared assertions live in util.py: let pytest show their operands.
pytest.register_assert_rewrite(f"{__name__}.util")
