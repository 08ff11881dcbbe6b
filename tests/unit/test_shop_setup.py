"""The host side of the demo shop's setup: what it sends and what it reads back."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from pretix_cluster import images
from pretix_cluster.shop_setup import (
    COMMAND,
    SCRIPT_IN_IMAGE,
    ShopSetupError,
    ShopSetupParams,
    ShopSetupResult,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "pretix"
PRETIX_IMAGE = Path(images.__file__).parent / "pretix"


def test_the_image_installs_the_script_where_the_host_runs_it():
    dockerfile = (PRETIX_IMAGE / "Dockerfile").read_text()
    assert f"COPY shop_setup.py {SCRIPT_IN_IMAGE}\n" in dockerfile
    assert COMMAND[-1] == SCRIPT_IN_IMAGE


def test_the_password_travels_in_the_json_only():
    params = ShopSetupParams(admin_password="correct horse battery", quota_size=50)
    sent = json.loads(params.to_json())
    assert sent["admin_password"] == "correct horse battery"
    assert sent["quota_size"] == 50
    assert "correct horse battery" not in " ".join(COMMAND)


def test_the_container_script_takes_every_parameter():
    """The script's Params has exactly the host's fields (it cannot import this package)."""
    script = ast.parse((PRETIX_IMAGE / "shop_setup.py").read_text())
    [params] = [n for n in script.body if isinstance(n, ast.ClassDef) and n.name == "Params"]
    declared = {n.target.id for n in params.body if isinstance(n, ast.AnnAssign)}
    sent = set(json.loads(ShopSetupParams(admin_password="x").to_json()))
    assert declared == sent


@pytest.mark.parametrize(
    "bad",
    [
        {"admin_password": ""},
        {"admin_password": "two\nlines"},
        {"admin_password": "x", "quota_size": -1},
        {"admin_password": "x", "event_slug": "no spaces"},
    ],
)
def test_bad_parameters_are_refused_before_anything_is_sent(bad):
    with pytest.raises(ValueError):
        ShopSetupParams(**bad).to_json()


def test_the_result_is_read_from_the_recorded_output_of_a_second_run():
    """Recorded by running the image's shop_setup.py in the dev cluster's web container
    (docker cp, then docker exec -i with the parameters on stdin) after `up` had set the
    shop up; the API token is replaced by a placeholder."""
    output = (FIXTURES / "shop_setup_output.txt").read_text()
    result = ShopSetupResult.from_output(output)
    assert (result.organizer, result.event) == ("demo", "tickets")
    assert result.item_id > 0 and result.quota_id > 0
    assert result.api_token_created is False
    assert result.changes == []  # the second run changed nothing


def test_the_result_line_is_found_among_log_lines():
    result = {"organizer": "o", "event": "e", "item_id": 1, "quota_id": 2, "api_token": "t"}
    result |= {"api_token_created": True, "changes": ["quota.size=5"]}
    log = json.dumps({"organizer": "o", "message": "a structured log line"})
    output = f"some warning\n{json.dumps(result)}\n{log}\n{{'not': json}}\n"  # logs at exit
    parsed = ShopSetupResult.from_output(output)
    assert (parsed.item_id, parsed.quota_id, parsed.api_token) == (1, 2, "t")
    assert parsed.changes == ["quota.size=5"]


def test_output_without_a_result_is_an_error():
    with pytest.raises(ShopSetupError):
        ShopSetupResult.from_output('Traceback (most recent call last):\n{"detail": "x"}\n')
