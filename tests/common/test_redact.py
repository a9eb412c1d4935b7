"""The one way a URL's credentials are kept out of logs and messages, and read out to be sent."""

from __future__ import annotations

import pytest
from tinychat_common.redact import MASK, scrub_secrets, url_credentials, url_origin, without_credentials


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:hunter22@models.lan:8080/v1", "http://models.lan:8080/v1"),
        ("https://sk-only-a-token@api.example.com/v1?x=1", "https://api.example.com/v1?x=1"),
        ("http://u:p%40ss@word@10.0.0.5/v1", "http://10.0.0.5/v1"),
        ("http://admin:pw@[::1]:8000/v1", "http://[::1]:8000/v1"),
        ("http://localhost:7801", "http://localhost:7801"),
    ],
)
def test_a_url_is_shown_without_its_credentials(url: str, shown: str) -> None:
    assert without_credentials(url) == shown


def test_an_origin_has_no_credentials_path_or_query() -> None:
    url = "https://user:pw@blob.example.net:8443/img/1.png?sig=SECRETSIGNATURE"
    assert url_origin(url) == "https://blob.example.net:8443"


def test_credentials_are_read_out_decoded() -> None:
    assert url_credentials("http://al%20ice:p%40ss@host/v1") == ("al ice", "p@ss")
    assert url_credentials("http://host/v1") == ("", "")


@pytest.mark.parametrize(
    "text",
    [
        "could not reach http://user:hunter22@models.lan/v1",
        "could not reach https://tok3nvalue@models.lan/v1",
    ],
)
def test_credentials_in_a_url_inside_text_are_scrubbed(text: str) -> None:
    scrubbed = scrub_secrets(text)
    assert "hunter22" not in scrubbed and "tok3nvalue" not in scrubbed
    assert f"://{MASK}@models.lan/v1" in scrubbed
