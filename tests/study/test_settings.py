"""Typed settings: each key read by its declared type, layered defaults -> instance/config.py ->
MDF_STUDY_* -> test_config, wrong types named; and the apps that such settings give."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from study import create_app
from study.settings import Settings, load_settings

BASE = {"SECRET_KEY": "s" * 32, "MANIFEST": "m.json"}


def _load(tmp_path, env=None, **over):
    return load_settings(
        tmp_path, dict(BASE, **over), {f"MDF_STUDY_{k}": v for k, v in (env or {}).items()}
    )


def test_string_settings_keep_the_text_of_the_environment(tmp_path):
    env = {"ADMIN_TOKEN": "123456789012345", "PROLIFIC_COMPLETION_CODE": "null", "TITLE": "true",
           "SECRET_KEY": "0123456789", "MANIFEST": "m.json"}  # fmt: skip
    s = load_settings(tmp_path, None, {f"MDF_STUDY_{k}": v for k, v in env.items()})
    assert s.admin_token == "123456789012345"
    assert s.prolific_completion_code == "null" and s.title == "true"
    assert s.secret_key == "0123456789"


def test_admin_token_null_is_a_too_short_string_not_a_disabled_admin(tmp_path):
    with pytest.raises(ValueError, match="ADMIN_TOKEN must be a string of at least 12"):
        _load(tmp_path, {"ADMIN_TOKEN": "null"})
    assert _load(tmp_path, {"ADMIN_TOKEN": ""}).admin_token is None  # empty: unset


def test_ints_bools_and_lists_are_parsed_by_their_type(tmp_path):
    s = _load(tmp_path, {"TRIALS_PER_HIT": "4", "SEED": "+7", "PRACTICE": "Yes",
                         "VERIFY_CHECKSUMS": "0", "PROXY_FIX": "1", "MAX_CONTENT_LENGTH": "",
                         "MTURK_SUBMIT_HOSTS": "https://a.example, https://b.example"})  # fmt: skip
    assert (s.trials_per_hit, s.seed, s.practice, s.verify_checksums) == (4, 7, True, False)
    assert s.mturk_submit_hosts == ("https://a.example", "https://b.example")
    assert s.max_content_length is None  # empty value of an optional setting: unset
    assert s.session_cookie_secure is True  # unset: behind a proxy, cookies are HTTPS-only
    s = _load(tmp_path, {"MTURK_SUBMIT_HOSTS": '["https://c.example"]', "PRACTICE": "off"})
    assert s.mturk_submit_hosts == ("https://c.example",) and s.practice is False


@pytest.mark.parametrize(
    "key,text,expected",
    [
        ("TRIALS_PER_HIT", "four", "an integer"),
        ("TRIALS_PER_HIT", "4.0", "an integer"),
        ("PRACTICE", "maybe", "true or false"),
        ("MTURK_SUBMIT_HOSTS", '["https://a.example", 3]', "a list of strings"),
    ],
)
def test_a_wrong_environment_value_names_the_key_the_value_and_the_type(
    tmp_path, key, text, expected
):
    with pytest.raises(ValueError) as err:
        _load(tmp_path, {key: text})
    msg = str(err.value)
    assert f"MDF_STUDY_{key}={text!r}" in msg and key in msg and expected in msg


@pytest.mark.parametrize(
    "key,value,expected",
    [("PER_PAIR", "3", "an integer"), ("PRACTICE", 1, "true or false"),
     ("TITLE", 5, "a string"), ("LEASE_SECONDS", True, "an integer")],
)  # fmt: skip
def test_a_wrong_python_value_names_the_key_the_value_and_the_type(tmp_path, key, value, expected):
    with pytest.raises(ValueError) as err:
        _load(tmp_path, **{key: value})
    msg = str(err.value)
    assert f"{key}={value!r}" in msg and expected in msg and "test_config" in msg


def test_secrets_are_not_shown_in_errors(tmp_path):
    with pytest.raises(ValueError) as err:
        _load(tmp_path, ADMIN_TOKEN=1234567890123)
    assert "1234567890123" not in str(err.value) and "ADMIN_TOKEN" in str(err.value)


def test_layers_defaults_config_py_environment_then_test_config(tmp_path):
    (tmp_path / "config.py").write_text("PER_PAIR = 4\nSEED = 5\nTRIALS_PER_HIT = 6\nTESTING = 1\n")
    s = load_settings(
        tmp_path,
        dict(BASE, TRIALS_PER_HIT=8),
        {"MDF_STUDY_SEED": "9", "MDF_STUDY_TRIALS_PER_HIT": "7"},
    )
    assert (s.checks_per_hit, s.per_pair, s.seed, s.trials_per_hit) == (1, 4, 9, 8)
    assert s.flask_extra == {"TESTING": 1}  # Flask's own keys pass through to app.config
    assert s.database == f"sqlite:///{tmp_path}/study.sqlite3"
    (tmp_path / "config.py").write_text("SEED = '5'\n")
    with pytest.raises(ValueError, match=r"SEED='5' is not an integer \(set in .*config\.py\)"):
        load_settings(tmp_path, BASE, {})


def test_unknown_environment_settings_and_missing_required_ones_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown setting MDF_STUDY_TRIAL_PER_HIT"):
        _load(tmp_path, {"TRIAL_PER_HIT": "4"})
    assert _load(tmp_path, {"INSTANCE": "/x"}).trials_per_hit == 9  # the folder, not a setting
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        load_settings(tmp_path, {"MANIFEST": "m"}, {})
    with pytest.raises(RuntimeError, match="MANIFEST is not set"):
        Settings(secret_key="s" * 32, manifest="")


def test_all_digit_secret_key_and_admin_token_from_the_environment(
    tmp_path, manifest, monkeypatch, h
):
    monkeypatch.setenv("MDF_STUDY_INSTANCE", str(tmp_path / "i"))
    monkeypatch.setenv("MDF_STUDY_SECRET_KEY", "12345678901234567890123456789012")
    monkeypatch.setenv("MDF_STUDY_ADMIN_TOKEN", "123456789012345")
    monkeypatch.setenv("MDF_STUDY_MANIFEST", str(manifest))
    app = create_app()
    c = app.test_client()
    page = c.get("/", query_string={"participant_id": "p1"})
    assert page.status_code == 200  # the CSRF token is signed with the all-digit key
    p = h.Participant(c)
    assert p.start().status_code == 303 and p.data["trials"]
    login = c.get("/admin/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.get_data(as_text=True)).group(1)
    r = c.post("/admin/login", data={"csrf": csrf, "token": "123456789012345"})
    assert r.status_code == 302 and c.get("/admin/stats.json").json["answers"] == 0
    app.extensions["study_engine"].dispose()


def test_no_study_module_imports_a_private_name_of_another():
    """Each module uses the others through their public names (the CLI once imported
    ``study._settings``; settings are now one public loader)."""
    bad = []
    for path in sorted((Path(__file__).parents[2] / "study").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or node.module.startswith("study")):
                bad += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert bad == []


def test_lease_admin_log_and_storage_settings_are_typed_and_checked(tmp_path):
    s = _load(tmp_path, {"START_LEASE_SECONDS": "90", "MAX_LEASES_PER_ADDRESS": "0",
                         "LEASE_LIMIT_EXEMPT": "10.0.0.0/8, 192.168.1.7", "ACCESS_LOG": "off",
                         "ADMIN_SESSION_SECONDS": "3600", "MIN_FREE_DISK_MB": "0"})  # fmt: skip
    assert (s.start_lease_seconds, s.max_leases_per_address, s.access_log) == (90, 0, "off")
    assert s.lease_limit_exempt == ("10.0.0.0/8", "192.168.1.7") and s.admin_session_seconds == 3600
    assert (s.first_lease_seconds, s.heartbeat_seconds) == (90, 22)
    assert _load(tmp_path, LEASE_SECONDS=60).first_lease_seconds == 60  # never above LEASE
    defaults = _load(tmp_path)
    assert (defaults.first_lease_seconds, defaults.max_leases_per_session) == (300, 1)
    assert defaults.lease_limit_exempt == ("127.0.0.0/8", "::1/128")
    with pytest.raises(ValueError, match="LEASE_LIMIT_EXEMPT: 'lab' is not an IP network"):
        _load(tmp_path, {"LEASE_LIMIT_EXEMPT": "lab"})
    with pytest.raises(ValueError, match="ACCESS_LOG must be one of 'private', 'full', 'off'"):
        _load(tmp_path, {"ACCESS_LOG": "verbose"})
    with pytest.raises(ValueError, match="ADMIN_SESSION_SECONDS must be an integer >= 60"):
        _load(tmp_path, ADMIN_SESSION_SECONDS=5)
