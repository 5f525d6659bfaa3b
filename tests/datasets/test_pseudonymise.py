"""CPR validation and keyed pseudonymisation (datasets/pseudonymise.py)."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets.pseudonymise import (
    KEY_ENV_VAR,
    InvalidCprError,
    PseudonymKeyError,
    cpr_birth_date,
    cpr_problem,
    cpr_sql,
    load_key,
    normalise_cpr,
    parse_key,
    pseudonym,
    pseudonymise,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("010190-1234", id="with_dash"),
        pytest.param("0101901234", id="without_dash"),
        pytest.param(" 0101901234 ", id="surrounding_spaces"),
        pytest.param("290200-4234", id="leap_day_2000"),
        pytest.param("0101901235", id="fails_modulus_11_but_valid"),
    ],
)
def test_valid_cpr_numbers(text: str) -> None:
    assert cpr_problem(text) is None
    assert len(normalise_cpr(text)) == 10


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("310290-1234", "real date", id="31_february"),
        pytest.param("290200-1234", "real date", id="29_february_1900"),
        pytest.param("290201-4234", "real date", id="29_february_2001"),
        pytest.param("000190-1234", "real date", id="day_zero"),
        pytest.param("011390-1234", "real date", id="month_13"),
        pytest.param("010190-123", "9 digits", id="too_short"),
        pytest.param("01019012345", "11 digits", id="too_long"),
        pytest.param("01019O-1234", "characters other than digits", id="letter_O"),
        pytest.param("010190/1234", "characters other than digits", id="slash"),
        pytest.param("0101-901234", "dash in the wrong place", id="dash_misplaced"),
        pytest.param("010190--1234", "dash in the wrong place", id="two_dashes"),
        pytest.param("", "missing", id="empty"),
        pytest.param(None, "missing", id="null"),
    ],
)
def test_invalid_cpr_numbers_say_why_without_the_number(text: str | None, reason: str) -> None:
    problem = cpr_problem(text)
    assert problem is not None and reason in problem
    assert text is None or text.strip() == "" or text not in problem
    if text is not None:
        with pytest.raises(InvalidCprError, match=reason):
            normalise_cpr(text)


@pytest.mark.parametrize(
    ("text", "born"),
    [
        pytest.param("0101903234", "1990-01-01", id="digit7_0to3_is_1900s"),
        pytest.param("0101364234", "2036-01-01", id="digit7_4_yy36_is_2000s"),
        pytest.param("0101374234", "1937-01-01", id="digit7_4_yy37_is_1900s"),
        pytest.param("0101579234", "1957-01-01", id="digit7_9_yy57_is_1900s"),
        pytest.param("0101369234", "2036-01-01", id="digit7_9_yy36_is_2000s"),
        pytest.param("0101575234", "2057-01-01", id="digit7_5_yy57_is_2000s"),
        pytest.param("0101588234", "1858-01-01", id="digit7_8_yy58_is_1800s"),
    ],
)
def test_century_follows_the_seventh_digit(text: str, born: str) -> None:
    assert cpr_birth_date(text) == dt.date.fromisoformat(born)


_cpr_like = st.one_of(
    st.text(alphabet="0123456789- aX", max_size=13),
    st.builds(
        lambda d, m, y, s, dash: f"{d:02d}{m:02d}{y:02d}{'-' if dash else ''}{s:04d}",
        st.integers(0, 32),
        st.integers(0, 13),
        st.integers(0, 99),
        st.integers(0, 9999),
        st.booleans(),
    ),
)


_CON = duckdb.connect()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), _cpr_like), min_size=1, max_size=40))
def test_sql_validation_agrees_with_python(texts: list[str | None]) -> None:
    sql = cpr_sql("c")
    got = _CON.execute(
        f"SELECT {sql.problem}, {sql.normalised} FROM (SELECT unnest(?::VARCHAR[]) AS c)", [texts]
    ).fetchall()
    for text, (problem, normalised) in zip(texts, got, strict=True):
        assert problem == cpr_problem(text), text
        if problem is None:
            assert normalised == normalise_cpr(text)  # type: ignore[arg-type]


def test_pseudonym_is_truncated_hmac_sha256_masked_to_63_bits() -> None:
    expected = int.from_bytes(hmac.digest(KEY, b"0101901234", "sha256")[:8], "big") & (2**63 - 1)
    assert pseudonym("010190-1234", KEY) == pseudonym("0101901234", KEY) == expected


def test_pseudonyms_are_deterministic_per_key_and_differ_across_keys() -> None:
    numbers = [f"0101{yy:02d}{serial:04d}" for yy in range(50, 60) for serial in range(100)]
    first, again, other = (
        pseudonymise(numbers, KEY),
        pseudonymise(numbers, KEY),
        pseudonymise(numbers, OTHER_KEY),
    )
    assert (first == again).all()
    assert (first != other).all()
    assert len(set(first.tolist())) == len(numbers)
    assert (first >= 0).all() and first.dtype.name == "int64"


def test_a_long_key_is_hashed_as_in_hmac() -> None:
    long_key = b"k" * 100
    expected = int.from_bytes(hmac.digest(long_key, b"0101901234", "sha256")[:8], "big") & (2**63 - 1)
    assert pseudonym("0101901234", long_key) == expected


RANDOM_HEX = "7df3f7bd135b131bbfc70615c560c91a857d30330f9ff7ddeed8d57bd1517081"  # 32 random bytes, made once with secrets.token_hex(32)
RANDOM = bytes.fromhex(RANDOM_HEX)


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        pytest.param(RANDOM_HEX, RANDOM, id="hex_64_digits"),
        pytest.param(RANDOM_HEX.upper() + "\n", RANDOM, id="hex_with_newline"),
        pytest.param(base64.b64encode(RANDOM).decode(), RANDOM, id="base64"),
        pytest.param(base64.urlsafe_b64encode(RANDOM).decode().rstrip("="), RANDOM, id="token_urlsafe"),
        pytest.param(b"\xff" + RANDOM[1:], b"\xff" + RANDOM[1:], id="raw_bytes"),
    ],
)
def test_parse_key(secret: str | bytes, key: bytes) -> None:
    assert parse_key(secret) == key


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        pytest.param("passwordpassword", "shorter than the 32 random bytes", id="passphrase"),
        pytest.param("correct horse battery staple", "neither hex nor base64", id="passphrase_spaces"),
        pytest.param(RANDOM_HEX[:62], "shorter than the 32 random bytes", id="hex_31_bytes"),
        pytest.param("00" * 32, "only 1 different byte values", id="zeros"),
        pytest.param("5e" * 32, "not random", id="one_byte_repeated"),
        pytest.param("   ", "empty", id="blank"),
    ],
)
def test_weak_keys_are_refused_with_how_to_make_one(secret: str, why: str) -> None:
    with pytest.raises(PseudonymKeyError, match=why) as info:
        parse_key(secret)
    assert "secrets.token_hex(32)" in str(info.value)
    assert secret.strip() == "" or secret not in str(info.value)


def test_load_key_prefers_the_file_and_falls_back_to_the_environment(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    other_hex = "2923cc4ee42def51afb672c64c155e5baa361f38d4cbd376020c0f4513fd870f"
    key_file.write_text(RANDOM_HEX + "\n")
    assert load_key(key_file, {KEY_ENV_VAR: other_hex}) == RANDOM
    assert load_key(None, {KEY_ENV_VAR: other_hex}) == bytes.fromhex(other_hex)
    assert load_key(None, {}) is None
    with pytest.raises(PseudonymKeyError, match="Cannot read the pseudonym key file"):
        load_key(tmp_path / "absent", {})
