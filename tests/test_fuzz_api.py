"""schemathesis against the served /openapi.json: generated requests (valid and invalid, all checks),
a fixed seed, no 5xx and every response conforming to the documented schema."""

import schemathesis
from hypothesis import HealthCheck, settings

from app.config import Config
from app.server import create_app
from tests.conftest import TINY_BUNDLE

APP = create_app(Config(bundle=TINY_BUNDLE, threads=1, max_tweets=64))
schema = schemathesis.openapi.from_wsgi("/openapi.json", APP)
CASES = {"count": 0}


@schema.parametrize()
@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_conforms_to_its_schema(case):
    CASES["count"] += 1
    response = case.call_and_validate()
    assert response.status_code < 500


def test_enough_cases_were_generated():
    print(f"schemathesis cases: {CASES['count']}")
    assert CASES["count"] >= 300, CASES
