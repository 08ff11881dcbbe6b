"""The spec's Patroni timings reach both patroni.yml (new clusters) and the DCS (running ones)."""

from __future__ import annotations

import yaml

from pretix_cluster.daemons.patroni import edit_config_command
from pretix_cluster.render.configs import render_files
from pretix_cluster.secrets import SECRET_NAMES
from pretix_cluster.spec import parse_spec


def test_edit_config_sets_every_dynamic_setting_from_the_spec():
    spec = parse_spec({"postgres": {"ttl": 24, "loop_wait": 4, "retry_timeout": 8}})
    command = edit_config_command(spec.postgres.dcs_settings())
    assert command[:2] == ["patronictl", "-c"]
    sets = {command[i + 1] for i, arg in enumerate(command) if arg == "--set"}
    assert sets == {
        "ttl=24",
        "loop_wait=4",
        "retry_timeout=8",
        "maximum_lag_on_failover=1048576",
        "synchronous_mode=true",
        "failsafe_mode=true",
    }


def test_failsafe_mode_can_be_switched_off_and_reaches_both_places():
    spec = parse_spec({"postgres": {"failsafe_mode": False}})
    assert "failsafe_mode=false" in edit_config_command(spec.postgres.dcs_settings())
    values = {name: f"value-of-{name}-0123456789" for name in SECRET_NAMES}
    dcs = yaml.safe_load(render_files(spec, values)["patroni.yml"].content)["bootstrap"]["dcs"]
    assert dcs["failsafe_mode"] is False


def test_patroni_yml_bootstraps_with_the_same_settings():
    spec = parse_spec({"postgres": {"ttl": 24, "loop_wait": 4, "retry_timeout": 8}})
    values = {name: f"value-of-{name}-0123456789" for name in SECRET_NAMES}
    patroni_yml = render_files(spec, values)["patroni.yml"].content
    dcs = yaml.safe_load(patroni_yml)["bootstrap"]["dcs"]
    for key, value in spec.postgres.dcs_settings().items():
        assert dcs[key] == value
