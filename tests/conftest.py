import pytest


@pytest.fixture(scope="session")
def oracle_cache():
    """``oracle_cache(name, spec)``: the official oracle's npz for ``spec``, computed once per session."""
    from tests.official import run_oracle

    cache = {}

    def get(name, spec):
        if name not in cache:
            cache[name] = run_oracle(spec)
        return cache[name]

    return get
