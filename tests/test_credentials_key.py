"""Rotating the credentials key: CREDENTIALS_KEY lists keys newest first; any of them decrypts, the
first encrypts, and `manage.py rotate_credentials` moves every stored credential to the newest
key so the old ones can be dropped."""

import pytest
from django.core.management import CommandError, call_command

from clusters.models import Cluster, Environment
from plumbing import crypto

TOKEN = "cluster-token-123"
WEBHOOK = "https://hooks.slack.example/services/T0/B0/xyz"


def store(cast):
    cast.cluster.token = TOKEN
    cast.cluster.save()
    cast.dev.slack_webhook_url = WEBHOOK
    cast.dev.save()


def stored(cast) -> tuple[str, str]:
    return Cluster.objects.get(pk=cast.cluster.pk).token, Environment.objects.get(pk=cast.dev.pk).slack_webhook_url


@pytest.mark.parametrize(
    ("stored_with", "read_with"),
    [
        pytest.param("old-key", "new-key,old-key", id="an-old-key-listed-after-the-new-one"),
        pytest.param("old-key", "new-key\nold-key\n", id="keys-one-per-line-as-a-mounted-file-holds-them"),
        pytest.param("", "new-key,{SECRET_KEY}", id="from-the-secret-key-derived-key-listed-as-the-old-one"),
    ],
)
def test_it_still_decrypts_with_an_old_key_listed_after_the_new_one(cast, settings, stored_with, read_with):
    settings.CREDENTIALS_KEY = stored_with
    store(cast)
    settings.CREDENTIALS_KEY = read_with.format(SECRET_KEY=settings.SECRET_KEY)
    assert stored(cast) == (TOKEN, WEBHOOK)


def test_it_encrypts_new_values_with_the_first_key(cast, settings):
    settings.CREDENTIALS_KEY = "new-key,old-key"
    ciphertext = crypto.encrypt(TOKEN)
    settings.CREDENTIALS_KEY = "new-key"
    assert crypto.decrypt(ciphertext) == TOKEN


def test_rotate_credentials_re_encrypts_everything_so_the_old_key_can_go(cast, settings):
    settings.CREDENTIALS_KEY = "old-key"
    store(cast)
    settings.CREDENTIALS_KEY = "new-key"
    with pytest.raises(crypto.CredentialError):
        stored(cast)  # dropping the old key too early loses them ...
    settings.CREDENTIALS_KEY = "new-key,old-key"
    call_command("rotate_credentials")
    settings.CREDENTIALS_KEY = "new-key"
    assert stored(cast) == (TOKEN, WEBHOOK)  # ... after the rotation it does not


def test_rotate_credentials_refuses_when_no_key_decrypts_and_names_the_setting(cast, settings):
    settings.CREDENTIALS_KEY = "old-key"
    store(cast)
    settings.CREDENTIALS_KEY = "unrelated-key"
    with pytest.raises(CommandError, match="CREDENTIALS_KEY"):
        call_command("rotate_credentials")
    settings.CREDENTIALS_KEY = "old-key"
    assert stored(cast) == (TOKEN, WEBHOOK)
