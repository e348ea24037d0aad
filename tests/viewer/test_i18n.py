"""Both catalogs hold every string the pages, scripts and code ask for."""

from __future__ import annotations

import json
import re
from pathlib import Path

from police_link.messages import ALARM_KINDS, CAMERA_STATES
from viewer.accounts import Role
from viewer.audit import Action
from viewer.i18n import LOCALES_DIR, choose_language, translate

VIEWER = Path(__file__).resolve().parents[2] / "viewer"


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for html in (VIEWER / "templates").glob("*.html"):
        keys |= set(re.findall(r"\{\{t\.([a-z0-9_.]+)\}\}", html.read_text()))
    for name in ("desk.js", "live.js"):
        js = (VIEWER / "static" / name).read_text()
        keys |= set(re.findall(r'\bt\("([a-z0-9_.]*[a-z0-9_])"', js))  # not t("state." + x)
    live_js = (VIEWER / "static" / "live.js").read_text()
    keys |= set(re.findall(r'"(live\.[a-z_]+)":', live_js))  # its English fallbacks
    for py in VIEWER.glob("*.py"):
        keys |= set(re.findall(r'translate\(\w+, "([a-z0-9_.]+)"\)', py.read_text()))
        keys |= set(re.findall(r'"(login\.[a-z_]+)"', py.read_text())) - {"login.html"}
    keys |= {f"state.{s}" for s in (*CAMERA_STATES, "unknown")}
    keys |= {f"alarm.{k}" for k in ALARM_KINDS}
    keys |= {f"role.{r.value}" for r in Role}
    keys |= {f"action.{a.value}" for a in Action}
    keys |= {f"users.state.{s}" for s in ("active", "disabled", "locked")}
    keys |= {"ws.connecting", "ws.online", "ws.offline"}
    return keys


def test_catalogs_complete_and_equal():
    catalogs = {p.stem: json.loads(p.read_text()) for p in LOCALES_DIR.glob("*.json")}
    assert set(catalogs) == {"uk", "en"}
    used = _used_keys()
    assert len(used) > 60
    for language, catalog in catalogs.items():
        missing = used - set(catalog)
        assert not missing, (language, sorted(missing))
    assert set(catalogs["uk"]) == set(catalogs["en"])


def test_translate_and_choose():
    assert translate("uk", "alerts.ack") == "Підтвердити"
    assert translate("en", "alerts.acked_by", user="ivan") == "Acknowledged by ivan"
    assert translate("en", "no.such.key") == "no.such.key"
    assert choose_language(None, None, "uk") == "uk"
    assert choose_language(None, "en", "uk") == "en"
    assert choose_language("uk", "en", "en") == "uk"
    assert choose_language("xx", "yy", "uk") == "uk"
