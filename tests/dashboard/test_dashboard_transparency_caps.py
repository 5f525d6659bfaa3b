"""The transparency page says, per register, what its cap promises everyone in it (real API)."""

from __future__ import annotations

import httpx

from tests.dashboard.dash_helpers import Api, app_test, open_page, texts


def test_transparency_page_shows_each_register_cap_in_plain_words(real_api: Api) -> None:
    with httpx.Client(base_url=real_api.url) as http:
        registers = http.get("/v1/transparency").json()["registers"]
    at = open_page(app_test(), "transparency")
    shown = texts(at)
    assert "What a person in the registers is promised in total" in shown
    for row in registers:  # every register has a cap (the default population budget unless set)
        assert row["cap_unit"] is not None
        epsilon = f"{row['cap_epsilon_requested']:.6g}" if row["cap_epsilon_requested"] is not None else None
        if row["cap_unit"] == "epsilon_delta":
            assert f"**{row['register']}**: all projects together stay within (ε = {epsilon}, δ =" in shown
        elif row["cap_unit"] == "epsilon":
            assert f"**{row['register']}**: at most ε = {epsilon} in total" in shown
        else:
            assert f"**{row['register']}**: all projects together stay within ρ =" in shown
    assert "no cap" not in shown
