"""The documented vectors from reference/shopify.md, pinned as tests."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from app.integrations.shopify import signing

DOC_QUERY = (
    "code=0907a61c0c8d55e99db179b68161bc00"
    "&hmac=700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"
    "&shop=some-shop.myshopify.com&state=0.6784241404160823&timestamp=1337178173"
)


def test_oauth_hmac_matches_shopify_doc_example() -> None:
    params = parse_qsl(DOC_QUERY)
    assert signing.oauth_message(params) == (
        "code=0907a61c0c8d55e99db179b68161bc00&shop=some-shop.myshopify.com"
        "&state=0.6784241404160823&timestamp=1337178173"
    )
    assert signing.oauth_hmac("hush", params) == (
        "700e2dadb827fcc8609e9d5ce208b2e9cdaab9df07390d2cbca10d7c328fc4bf"
    )
    assert signing.verify_oauth("hush", params) is True


def test_oauth_hmac_without_state() -> None:
    params = [
        ("code", "0907a61c0c8d55e99db179b68161bc00"),
        ("shop", "some-shop.myshopify.com"),
        ("timestamp", "1337178173"),
    ]
    assert signing.oauth_hmac("hush", params) == (
        "4712bf92ffc2917d15a2f5a273e39f0116667419aa4b6ac0b3baaf26fa3c4d20"
    )


def test_oauth_hmac_python_library_vector() -> None:
    params = [
        ("code", "a94a110d86d2452eb3e2af4cfb8a3828"),
        ("shop", "some-shop.myshopify.com"),
        ("timestamp", "1337178173"),
    ]
    assert signing.oauth_hmac("hush", params) == (
        "2cb1a277650a659f1b11e92a4a64275b128e037f2c3390e3c8fd2d8721dac9e2"
    )


def test_oauth_hmac_array_params_sign_as_json_list() -> None:
    params = [("shop", "some-shop.myshopify.com"), ("ids[]", "2"), ("ids[]", "1")]
    assert signing.oauth_message(params) == 'ids=["2", "1"]&shop=some-shop.myshopify.com'
    assert signing.oauth_hmac("hush", params) == (
        "b93b9f82996f6f8bf9f1b7bbddec284c8fabacdc4e12dc80550b4705f3003b1e"
    )


def test_oauth_hmac_escapes_delimiters() -> None:
    params = [("a", "1&b=2"), ("c=3&d", "4")]
    assert signing.oauth_message(params) == "a=1%26b=2&c%3D3%26d=4"
    assert signing.oauth_hmac("secret", params) == (
        "8de3c7e965d22fa21e059868e4004f5b6fbdcef293d1622ff9408edd6325bc6b"
    )


def test_oauth_hmac_refuses_tampered_query() -> None:
    params = parse_qsl(DOC_QUERY.replace("some-shop", "other-shop"))
    assert signing.verify_oauth("hush", params) is False


def test_oauth_hmac_refuses_missing_or_repeated_hmac() -> None:
    params = [item for item in parse_qsl(DOC_QUERY) if item[0] != "hmac"]
    assert signing.verify_oauth("hush", params) is False
    doubled = [*parse_qsl(DOC_QUERY), ("hmac", "00")]
    assert signing.verify_oauth("hush", doubled) is False


def test_webhook_hmac_is_base64_of_raw_bytes() -> None:
    body = b'{"id":820982911946154508,"email":"jon@example.com"}'
    assert signing.webhook_hmac("hush", body) == "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="
    assert signing.verify_webhook("hush", body, "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8=")


def test_webhook_hmac_of_reserialised_json_differs() -> None:
    body = b'{"id": 820982911946154508, "email": "jon@example.com"}'
    assert signing.webhook_hmac("hush", body) == "8oTAlJ0HtUEbJDFmjrpj7ILB73p0WlxjdkJwg509B48="
    assert not signing.verify_webhook("hush", body, "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8=")


def test_webhook_hex_digest_is_not_accepted() -> None:
    body = b'{"id":820982911946154508,"email":"jon@example.com"}'
    hex_digest = "0f450c5e6863c01462e32eba4e6849ac3961400043ef32367e6de9ebf40b328f"
    assert signing.verify_webhook("hush", body, hex_digest) is False


def test_webhook_empty_body_or_header_is_refused() -> None:
    assert signing.verify_webhook("hush", b"", "x") is False
    assert signing.verify_webhook("hush", b"{}", None) is False


PROXY_QUERY = (
    "extra=1&extra=2&shop=shop-name.myshopify.com&logged_in_customer_id=1"
    "&path_prefix=%2Fapps%2Fawesome_reviews&timestamp=1317327555"
)


def test_app_proxy_signature_matches_doc() -> None:
    params = parse_qsl(PROXY_QUERY, keep_blank_values=True)
    assert signing.app_proxy_message(params) == (
        "extra=1,2logged_in_customer_id=1path_prefix=/apps/awesome_reviews"
        "shop=shop-name.myshopify.comtimestamp=1317327555"
    )
    assert signing.app_proxy_signature("hush", params) == (
        "4c68c8624d737112c91818c11017d24d334b524cb5c2b8ba08daa056f7395ddb"
    )


def test_app_proxy_signature_anonymous_visitor() -> None:
    query = PROXY_QUERY.replace("logged_in_customer_id=1", "logged_in_customer_id=")
    params = parse_qsl(query, keep_blank_values=True)
    assert signing.app_proxy_signature("hush", params) == (
        "e072b6d7e6622d85912a5214b860d3100dc1e73d9bc29f43796ac8c9ff8093cb"
    )


def test_app_proxy_signature_older_form_without_customer() -> None:
    query = PROXY_QUERY.replace("&logged_in_customer_id=1", "")
    params = parse_qsl(query, keep_blank_values=True)
    assert signing.app_proxy_signature("hush", params) == (
        "a9718877bea71c2484f91608a7eaea1532bdf71f5c56825065fa4ccabe549ef3"
    )


def test_app_proxy_doc_placeholder_text_does_not_verify() -> None:
    query = PROXY_QUERY.replace("shop-name.myshopify.com", "{shop}.myshopify.com")
    params = parse_qsl(query, keep_blank_values=True)
    assert signing.app_proxy_signature("hush", params) == (
        "e71d571c0a35d531ae367189d59afd33ae5b56be274c77c9e8bd6ce42e256304"
    )
    signed = [
        *params,
        ("signature", "4c68c8624d737112c91818c11017d24d334b524cb5c2b8ba08daa056f7395ddb"),
    ]
    assert signing.verify_app_proxy("hush", signed) is False


def test_app_proxy_refuses_repeated_shop() -> None:
    params = parse_qsl(PROXY_QUERY, keep_blank_values=True)
    signature = signing.app_proxy_signature("hush", params)
    doubled = [*params, ("shop", "evil.myshopify.com"), ("signature", signature)]
    assert signing.verify_app_proxy("hush", doubled) is False


SESSION_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL3NvbWUtc2hvcC5teXNob3BpZnkuY29tL2Fk"
    "bWluIiwiZGVzdCI6Imh0dHBzOi8vc29tZS1zaG9wLm15c2hvcGlmeS5jb20iLCJhdWQiOiJ0ZXN0a2V5Iiwic3ViIjoi"
    "NDIiLCJleHAiOjE3MDAwMDAwNjAsIm5iZiI6MTcwMDAwMDAwMCwiaWF0IjoxNzAwMDAwMDAwLCJqdGkiOiIwMDAwMDAw"
    "MC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDEiLCJzaWQiOiJhYmMxMjMifQ.1KiEkfbjW8J3Y92QFzWCpnG_-JJhet"
    "JrXpmTprlho0s"
)


def test_session_token_vector_decodes_inside_its_lifetime() -> None:
    token = signing.decode_session_token(SESSION_TOKEN, "testkey", "hush", now=1700000030)
    assert token.shop == "some-shop.myshopify.com"
    assert token.user_id == "42"
    assert token.session_id == "abc123"


def test_session_token_vector_is_expired_now() -> None:
    with pytest.raises(signing.SessionTokenError, match="expired"):
        signing.decode_session_token(SESSION_TOKEN, "testkey", "hush")


def test_session_token_leeway_is_ten_seconds() -> None:
    signing.decode_session_token(SESSION_TOKEN, "testkey", "hush", now=1700000069)
    with pytest.raises(signing.SessionTokenError):
        signing.decode_session_token(SESSION_TOKEN, "testkey", "hush", now=1700000071)


def test_session_token_wrong_audience_or_secret_is_refused() -> None:
    with pytest.raises(signing.SessionTokenError):
        signing.decode_session_token(SESSION_TOKEN, "otherkey", "hush", now=1700000030)
    with pytest.raises(signing.SessionTokenError):
        signing.decode_session_token(SESSION_TOKEN, "testkey", "wrong", now=1700000030)


@pytest.mark.parametrize(
    ("domain", "valid"),
    [
        ("some-shop.myshopify.com", True),
        ("a.myshopify.com", True),
        ("-shop.myshopify.com", False),
        ("shop.myshopify.com.evil.com", False),
        ("evil.com/shop.myshopify.com", False),
        ("shop_name.myshopify.com", False),
        ("", False),
        (None, False),
    ],
)
def test_shop_domain_rule(domain: str | None, valid: bool) -> None:
    assert signing.is_valid_shop_domain(domain) is valid
