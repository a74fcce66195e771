"""Settings come only from the environment; a bad value stops start-up naming the variable."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOAD = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"


def start(tmp_path, **env):
    """Load the settings in a fresh interpreter with only `env` (plus PATH) in the environment."""
    base = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "SECRET_KEY": "t",
        "PAMPAM_VAR_DIR": str(tmp_path),
    }
    base.update(env)
    return subprocess.run([sys.executable, "-c", LOAD], cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)


def test_it_starts_with_good_settings(tmp_path):
    result = start(tmp_path, DEBUG="no")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "nonsense"),
        ("DATABASE_URL", "mysql://u@db/pampam"),
        ("DATABASE_URL", "postgres://"),
        ("DATABASE_URL", "postgres://u@db:port/pampam"),
        ("REDIS_URL", "http://redis:6379/0"),
        ("PORTAL_URL", "portal.example"),
        ("JENKINS_URL", "ftp://jenkins"),
        ("HISTORY_PAGE_SIZE", "fifty"),
        ("HISTORY_PAGE_SIZE", "0"),
        ("DATABASE_CONN_MAX_AGE", "-1"),
        ("WATCHER_STALE_SECONDS", "1.5"),
    ],
)
def test_it_refuses_to_start_with_a_bad_value_naming_the_variable(tmp_path, name, value):
    result = start(tmp_path, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"Environment variable {name}=" in result.stderr


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off(tmp_path):
    result = start(tmp_path, SECRET_KEY="", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("given", [{"SLACK_BOT_TOKEN": "xoxb-1"}, {"SLACK_CHANNEL": "deploys"}])
def test_it_wants_the_slack_bot_token_and_channel_together(tmp_path, given):
    result = start(tmp_path, **given)
    assert result.returncode != 0
    assert "SLACK_BOT_TOKEN and SLACK_CHANNEL go together" in result.stderr


def test_it_reads_the_slack_signing_secret_from_a_file(tmp_path):
    (tmp_path / "signing").write_text("pampam-demo\n")
    code = LOAD.replace("settings.DEBUG", "settings.SLACK_SIGNING_SECRET")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings", "SECRET_KEY": "t"}
    env.update(PAMPAM_VAR_DIR=str(tmp_path), SLACK_SIGNING_SECRET_FILE=str(tmp_path / "signing"))
    env.pop("SLACK_SIGNING_SECRET", None)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "pampam-demo"


def test_it_names_a_missing_secret_file(tmp_path):
    result = start(tmp_path, SECRET_KEY_FILE=str(tmp_path / "missing"))
    assert result.returncode != 0
    assert "SECRET_KEY_FILE" in result.stderr
    assert "cannot be read" in result.stderr


def test_it_reads_secrets_from_files(tmp_path):
    (tmp_path / "key").write_text("from-a-file\n")
    (tmp_path / "token").write_text("jenkins-secret\n")
    code = LOAD.replace("settings.DEBUG", "settings.SECRET_KEY, settings.JENKINS_TOKEN")
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PAMPAM_VAR_DIR": str(tmp_path),
        "SECRET_KEY_FILE": str(tmp_path / "key"),
        "JENKINS_TOKEN_FILE": str(tmp_path / "token"),
    }
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["from-a-file", "jenkins-secret"]


def test_it_never_prints_the_database_password_in_an_error(tmp_path):
    result = start(tmp_path, DATABASE_URL="postgres://pampam:hunter2@db:port/pampam")
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr
    assert "hunter2" not in result.stderr
