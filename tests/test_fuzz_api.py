"""schemathesis against the served /openapi.json: generated requests, valid and invalid, for every operation, all
checks (schemathesis.toml), a fixed seed, no 5xx and every response conforming to the documented schema."""

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config import Config
from app.server import create_app
from tests.conftest import TINY_BUNDLE


def _run(operation) -> int:
    """Run the checks on up to 300 generated cases of one operation; the number of cases run."""
    count = 0
    cases = st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in schemathesis.GenerationMode))

    @given(case=cases)
    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def check(case):
        nonlocal count
        count += 1
        response = case.call_and_validate()
        assert response.status_code < 500

    check()
    return count


def test_api_conforms_to_its_schema():
    schema = schemathesis.openapi.from_wsgi("/openapi.json", create_app(Config(bundle=TINY_BUNDLE, threads=1)))
    cases = {result.ok().label: _run(result.ok()) for result in schema.get_all_operations()}
    print(f"schemathesis cases: {cases}")
    assert sum(cases.values()) >= 300 and min(cases.values()) > 0, cases
