"""Applicant-supplied text reaches the administrator's page as plain text: anyone may apply anonymously,
so Markdown in a title or summary must not put links or images on the administrator's screen."""

from __future__ import annotations

from tests.dashboard.dash_helpers import Api, app_test, open_page, sign_in, texts

ATTACK_TITLE = "Diabetes ![x](http://attacker.example/pixel.png) [link](http://attacker.example/a)"
ATTACK_SUMMARY = (
    "**Urgent**: see [the protocol](http://attacker.example/p) ![logo](http://attacker.example/l.png)"
)


def test_application_text_is_shown_literally_on_the_admin_page(real_api: Api) -> None:
    application = {
        "title": ATTACK_TITLE,
        "purpose": "research",
        "institution": "[Aarhus](http://attacker.example/i)",
        "summary": ATTACK_SUMMARY,
        "registers": ["cpr"],
        "epsilon": 5.0,  # outside the published policy: it waits for an administrator
        "delta": 0.0,
        "duration_days": 90,
        "applicant": {"name": "![me](http://attacker.example/me.png)", "email": "x@example.dk"},
    }
    with real_api.admin() as http:
        response = http.post("/v1/applications", json=application, headers={"Authorization": ""})
    assert response.status_code == 201, response.text
    app_id = response.json()["id"]
    assert response.json()["status"] == "pending"

    at = open_page(sign_in(app_test(), real_api.admin_token), "admin")
    assert f"admin_approve_{app_id}" in {b.key for b in at.button}
    plain = [str(e.value) for e in at.text]
    assert f"{ATTACK_TITLE} — [Aarhus](http://attacker.example/i)" in plain, plain
    assert ATTACK_SUMMARY in plain, plain
    assert any("![me](http://attacker.example/me.png)" in value for value in plain), plain
    # Nothing an applicant wrote reaches an element that renders Markdown (labels included).
    rendered = texts(at) + "\n".join(e.label for e in at.expander)
    assert "attacker.example" not in rendered, rendered
