import pytest

from scanner.detection import is_sensitive_name


@pytest.mark.parametrize(
    "name",
    [
        "FLY_API_TOKEN",
        "NPM_TOKEN",
        "DB_PASSWORD",
        "apiKey",
        "AWS_SECRET_ACCESS_KEY",
        "DATABASE_URL",
        "client_secret",
        "GITHUB_PAT",
        "SLACK_WEBHOOK_URL",
        "db.password",
    ],
)
def test_sensitive(name: str) -> None:
    assert is_sensitive_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "PATH",
        "GPG_KEY",
        "PASSWORD_FILE",
        "TOKEN_URL",
        "org.opencontainers.image.authors",
        "AUTH_TYPE",
        "PYTHON_SHA256",
        "LANG",
        "SECRET_KEY_PATH",
        "HOME",
    ],
)
def test_not_sensitive(name: str) -> None:
    assert not is_sensitive_name(name)
