"""PII without Ray: each detector's positives and near-misses in several
scripts, the engine against the reference on hostile text, and the stage's
actions (redact, drop, count, density)."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from conftest import GOOD_EN
from dedupe_at_scale import columns as col
from dedupe_at_scale.config import config_from_dict
from dedupe_at_scale.stages.base import Batch
from dedupe_at_scale.stages.pii import PiiStage
from dedupe_at_scale.stages.pii.detectors import find_pii, iban_valid, luhn
from dedupe_at_scale.stages.pii.engine import Engine


def pii_config(**values):
    return config_from_dict({"pii": {"enabled": True, **values}})


CASES = {
    # (text, the values found, in order, as (type, value))
    "email": ("Write to anna.schmidt@firma-berlin.de today", [("email", "anna.schmidt@firma-berlin.de")]),
    "email in Chinese": ("联系我：wang.li@qinghua.edu.cn，谢谢", [("email", "wang.li@qinghua.edu.cn")]),
    "email in Arabic": ("راسلني على omar_99@mail.example-uni.sa من فضلك", [("email", "omar_99@mail.example-uni.sa")]),
    "allowed e-mail domain": ("see user@example.com or x@sub.example.org", []),
    "not an e-mail": ("the @handle and a@b and name@domain", []),
    "ipv4": ("The server 10.12.0.254 answered", [("ipv4", "10.12.0.254")]),
    "ipv4 at a sentence end": ("It was 172.16.4.1.", [("ipv4", "172.16.4.1")]),
    "documentation range": ("Use 192.0.2.15 or 203.0.113.9 in examples", []),
    "version strings": ("version 1.2.3.4, v2.0.10.1, release 3.1.4.1 and 1.2.3.4.5", []),
    "octet out of range": ("Serial 300.1.2.3 and 1.2.3.256", []),
    "ipv6": ("Connect to 2a00:1450:4001:82a::200e now", [("ipv6", "2a00:1450:4001:82a::200e")]),
    "not ipv6": ("std::vector, 12:30:45, 00:1A:2B:3C:4D:5E and 2001:db8::1", []),
    "international phone": ("Ruf an: +49 30 1234567 oder +44 20 7946 0958", [("phone", "+49 30 1234567"), ("phone", "+44 20 7946 0958")]),
    "phone in Russian": ("Звоните +7 495 123-45-67 днём", [("phone", "+7 495 123-45-67")]),
    "US phone": ("Call (415) 555-2671 or 212.555.0199", [("phone", "(415) 555-2671"), ("phone", "212.555.0199")]),
    "dates are not phones": ("On 2023-11-05 and 05.11.2023 at 12:30, ISO 8601 2023 11 05", []),
    "card, Luhn valid": ("Card 4111 1111 1111 1111 expires", [("credit_card", "4111 1111 1111 1111")]),
    "card, Luhn invalid": ("Card 4111 1111 1111 1112 expires", []),
    "card, no separators": ("pay with 5500005555555559 now", [("credit_card", "5500005555555559")]),
    "card, mixed separators": ("4111-1111 1111-1111", []),
    "order number, Luhn valid by chance": ("Order 1234567812345670 shipped", []),
    "iban": ("IBAN DE89 3704 0044 0532 0130 00 bitte", [("iban", "DE89 3704 0044 0532 0130 00")]),
    "iban, compact": ("GB82WEST12345698765432.", [("iban", "GB82WEST12345698765432")]),
    "iban, bad checksum": ("IBAN DE89 3704 0044 0532 0130 01 bitte", []),
    "aws key": ("key AKIAIOSFODNN7EXAMPLE here", [("secret", "AKIAIOSFODNN7EXAMPLE")]),
    "github token": ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789 ok", [("secret", "ghp_abcdefghijklmnopqrstuvwxyz0123456789")]),
    "private key": (
        "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\ny",
        [("secret", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----")],
    ),
    "not a key": ("AKIA is a prefix; ghp_short; -----BEGIN PUBLIC KEY-----", []),
    "github fine-grained token": ("pat github_pat_" + "11ABCDEFG0" * 7 + " end", [("secret", "github_pat_" + "11ABCDEFG0" * 7)]),
    "slack token": ("slack xoxb-1234567890-abcdefghij here", [("secret", "xoxb-1234567890-abcdefghij")]),
    "google api key": ("key=AIzaSyA1b2C3d4E5f6G7h8I9j0K_l-M3n4O5p6Q;", [("secret", "AIzaSyA1b2C3d4E5f6G7h8I9j0K_l-M3n4O5p6Q")]),
    "stripe live key": ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc now", [("secret", "sk_live_4eC39HqLyjWDarjtT1zdp7dc")]),
    "jwt": ("auth eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4f", [("secret", "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4f")]),
    "not secrets": ("github_pat_short xoxb-short AIzaShort sk_live_short sk_test_" + "a" * 30, []),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_detectors(name):
    text, expected = CASES[name]
    cfg = pii_config().pii
    found = find_pii(text, cfg)
    assert [(f.kind, text[f.start : f.end]) for f in found] == expected
    engine = Engine(cfg).find(pa.array([text]), [0])
    assert engine.get(0, []) == found


def test_checksums():
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")
    assert not iban_valid("XX89370400440532013000")  # no such country


PIECES = [
    "anna@firma.de", "a.b@c", "x@example.com", "10.0.0.1", "999.1.1.1", "v1.2.3.4", "1.2.3.4.5",
    "2a00:1450:4001:82a::200e", "::1", "+49 30 1234567", "+1", "(415) 555-2671", "2023-11-05",
    "4111 1111 1111 1111", "4111 1111 1111 1112", "DE89 3704 0044 0532 0130 00", "AKIAIOSFODNN7EXAMPLE",
    "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", "MIIEpAIBAAKCAQEA", "中文", "текст",
    "ş", "1234", "-", ".", ":", "@", " ", "\n", "eyJhbGciOiJIUzI1.eyJzdWIiOiIxMjM0.SflKxwRJSMeKKF2QT4f",
    "github_pat_" + "11ABCDEFG0" * 6, "xoxb-1234567890", "xoxp-", "AIzaSyA1b2C3d4E5f6G7h8I9j0K_l-M3n4O5p6",
    "sk_live_4eC39HqLyjWDarjtT1zdp7", "rk_live_", "ghp_abcdefghijklmnopqrstuvwxyz012345678", "_", "9",
]  # fmt: skip

# Each secret detector's shape: prefixes, the alphabet of its body and the
# body's shortest and longest length (detectors.py).
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
SECRET_SHAPES = [
    (["AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"], ALNUM[:26] + ALNUM[52:], 16, 16),
    (["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], ALNUM, 36, 36),
    (["github_pat_"], ALNUM + "_", 60, 90),
    (["xoxb-", "xoxa-", "xoxp-", "xoxr-", "xoxs-"], ALNUM + "-", 10, 72),
    (["AIza"], ALNUM + "_-", 35, 35),
    (["sk_live_", "rk_live_"], ALNUM, 24, 99),
]  # fmt: skip
CONTEXT = ["", " ", "x", "_", "9", "-", ".", "\n", "A"]


def secret_samples(rng: random.Random) -> list[str]:
    """Per shape, bodies one shorter than the shortest, the shortest, some
    between, the longest and one longer, each between random neighbours."""
    texts = []
    for prefixes, alphabet, shortest, longest in SECRET_SHAPES:
        lengths = {shortest - 1, shortest, longest, longest + 1, (shortest + longest) // 2}
        for prefix in prefixes:
            for n in sorted(lengths):
                for _ in range(6):
                    body = "".join(rng.choice(alphabet) for _ in range(n))
                    texts.append(rng.choice(CONTEXT) + prefix + body + rng.choice(CONTEXT))
    return texts


def test_engine_equals_reference_per_secret_detector():
    """A candidate pattern narrower than its detector (a mutation of one
    prefix, length or class) misses some of these, and the engine with it."""
    rng = random.Random(5)
    texts = secret_samples(rng)
    cfg = pii_config(detect=["secret"]).pii
    fast = Engine(cfg).find(pa.array(texts), range(len(texts)))
    reference = {i: f for i, t in enumerate(texts) if (f := find_pii(t, cfg))}
    assert fast == reference
    # Every shape and prefix is found at its shortest and longest body.
    found_prefixes = {texts[i][f[0].start : f[0].start + 4] for i, f in reference.items()}
    for prefixes, *_ in SECRET_SHAPES:
        assert {p[:4] for p in prefixes} <= found_prefixes


def test_engine_equals_reference_on_hostile_text():
    rng = random.Random(2)
    texts = ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12))) for _ in range(3000)]
    texts += [GOOD_EN, "", "x" * 5000]
    cfg = pii_config().pii
    fast = Engine(cfg).find(pa.array(texts), range(len(texts)))
    reference = {i: f for i, t in enumerate(texts) if (f := find_pii(t, cfg))}
    assert len(reference) > 1000
    assert fast == reference
    # Only some detectors on: the same holds.
    cfg = pii_config(detect=["phone", "credit_card"]).pii
    fast = Engine(cfg).find(pa.array(texts), range(len(texts)))
    assert fast == {i: f for i, t in enumerate(texts) if (f := find_pii(t, cfg))}


def run_stage(texts: list[str], **values):
    cfg = pii_config(**values)
    n = len(texts)
    table = pa.table(
        {
            "text": pa.array(texts, pa.string()),
            col.STAGE: pa.nulls(n, pa.string()),
        }
    )
    return PiiStage(cfg)(Batch(table, "text"))


def test_stage_actions_and_density():
    texts = [
        GOOD_EN + " Mail anna@firma.de or call +49 30 1234567.",
        GOOD_EN + " Card 4111 1111 1111 1111.",
        "anna@firma.de bob@firma.de carl@firma.de dora@firma.de list",  # mostly PII
        GOOD_EN,
    ]
    result = run_stage(texts, actions={"credit_card": "drop", "phone": "count"})
    new = result.text.to_pylist()
    assert new[0] == GOOD_EN + " Mail <EMAIL> or call +49 30 1234567."  # phone only counted
    assert new[3] == GOOD_EN
    assert result.columns["pii_redacted"].to_pylist() == [1, 0, 0, 0]
    assert result.columns[col.COUNT_PREFIX + "pii_email"].to_pylist() == [1, 0, 4, 0]
    assert result.columns[col.COUNT_PREFIX + "pii_phone"].to_pylist() == [1, 0, 0, 0]
    r = result.rejected
    assert r.mask.tolist() == [False, True, True, False]
    assert r.rule.to_pylist()[1:3] == ["pii_credit_card", "pii_density"]
    reasons = " ".join(x for x in r.reason.to_pylist() if x)
    # No detected value is ever written into a reason.
    for value in ("4111", "anna@", "firma.de"):
        assert value not in reasons
    # Density counts words in scripts without spaces by characters: one
    # address in a Chinese paragraph is no contact list.
    chinese = (
        "我们的邻居是一位历史老师，她出版了一本山谷徒步路线的指南。" * 8
        + "邮件：wang.li@qinghua.cn"
    )
    assert run_stage([chinese]).rejected is None
    # Density off: the list of addresses is redacted instead.
    result = run_stage(texts[2:3], max_hits_per_1000_words=None)
    assert result.text.to_pylist() == ["<EMAIL> <EMAIL> <EMAIL> <EMAIL> list"]


def test_config_refuses_unknown_types_and_redaction_of_post_training_rows():
    from dedupe_at_scale.config import ConfigError

    with pytest.raises(ConfigError, match="'pii.detect' has 'ssn'"):
        pii_config(detect=["ssn"])
    with pytest.raises(ConfigError, match="'pii.actions' redact"):
        config_from_dict({"input": {"format": "chat"}, "pii": {"enabled": True}})
    config_from_dict(
        {"input": {"format": "chat"}, "pii": {"enabled": True, "actions": {k: "count" for k in
         ["email", "ipv4", "ipv6", "phone", "credit_card", "iban", "secret"]}}}
    )  # fmt: skip
