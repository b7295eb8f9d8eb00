"""Alert rules generated from the SLO file, the Alertmanager config, and the fragile target's
broken alerting (the alert steps' negative control), checked with Prometheus's own tools.

``promtool test rules`` proves the expressions on input series. It compares annotations
exactly, so the rules it loads have theirs removed; the annotations are asserted here instead.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shakeout import cli
from shakeout.errors import ConfigError
from shakeout.observability.rules import (
    PLATFORM_ALERTS,
    alert_name,
    alertmanager_config,
    dump_rules,
    dump_yaml,
    duration,
    rule_file,
)
from shakeout.slofile import SLOFile, load_slo

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "targets"
SLO = TARGETS / "local.slo.yaml"
FRAGILE_RULES = TARGETS / "local-fragile.rules.yml"
FRAGILE_ALERTMANAGER = TARGETS / "local-fragile.alertmanager.yml"
JOURNEYS = ("checkout", "browse", "product", "cart")


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip(
            "promtool not installed (Debian package prometheus; .ci/run installs it as root)"
        )
    return path


@pytest.fixture(scope="module")
def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.skip(
            "amtool not installed (Debian package prometheus-alertmanager; .ci/run installs it "
            "as root)"
        )
    return path


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}{done.stderr}"


def _alerts(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def _generated(*, production: bool = False, scrape_interval_s: float = 0.5) -> dict[str, Any]:
    return rule_file(load_slo(SLO), scrape_interval_s=scrape_interval_s, production=production)


@pytest.mark.parametrize("production", [False, True], ids=["drill", "production"])
def test_generated_rules_pass_promtool(promtool: str, tmp_path: Path, production: bool) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(dump_rules(_generated(production=production)), encoding="utf-8")
    _run(promtool, "check", "rules", str(path))


def test_every_alert_is_named_labelled_and_annotated() -> None:
    document = _generated()
    assert [g["name"] for g in document["groups"]] == ["shakeout-slo", "shakeout-platform"]
    alerts = _alerts(document)
    names = {a["alert"] for a in alerts}
    assert names == {
        *PLATFORM_ALERTS,
        *(alert_name(j, "ErrorBudgetBurn") for j in JOURNEYS),
        "CheckoutLatencyHigh",
        "BrowseLatencyHigh",
    }
    for alert in alerts:
        annotations = alert["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), alert["alert"]
        assert annotations["runbook_url"] == f"docs/runbooks.md#{alert['alert'].lower()}"
        assert alert["labels"]["severity"] in ("page", "ticket")
    slo_alerts = document["groups"][0]["rules"]
    for alert in (r for r in slo_alerts if "alert" in r):
        assert "compression" in alert["annotations"], alert["alert"]
        assert {"journey", "service", "window", "objective"} <= set(alert["labels"])
    burns = [a for a in alerts if a["alert"] == "CheckoutErrorBudgetBurn"]
    assert [(a["labels"]["window"], a["labels"]["severity"]) for a in burns] == [
        ("10s/2s", "page"),
        ("30s/5s", "ticket"),
    ]
    assert burns[0]["annotations"]["summary"] == (
        "checkout (gateway POST /api/checkout) is burning its 0.5% error budget 14.4x too "
        "fast over 10s and 2s"
    )
    assert burns[0]["annotations"]["compression"] == "10s/2s here = 1h/12m in production at 360x"
    assert burns[1]["annotations"]["compression"] == "30s/5s here = 3h/30m in production at 360x"
    assert "journey:shakeout_http_errors:ratio_rate10s" in burns[0]["expr"]


def test_every_alert_has_a_runbook_section() -> None:
    text = (ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8")
    anchors = {h.lower() for h in re.findall(r"^## (\w+)\s*$", text, re.MULTILINE)}
    missing = {a["alert"] for a in _alerts(_generated()) if a["alert"].lower() not in anchors}
    assert not missing, f"docs/runbooks.md has no section for {sorted(missing)}"


def test_production_rules_scale_every_window_by_the_compression() -> None:
    alerts = _alerts(_generated(production=True, scrape_interval_s=60))
    burns = [a for a in alerts if a["alert"] == "CheckoutErrorBudgetBurn"]
    assert [a["labels"]["window"] for a in burns] == ["1h/12m", "3h/30m"]
    assert "ratio_rate1h{" in burns[0]["expr"]
    assert "ratio_rate12m{" in burns[0]["expr"]
    assert burns[0]["annotations"]["compression"] == "1h/12m here = 10s/2s in drills at 360x"
    latency = next(a for a in alerts if a["alert"] == "CheckoutLatencyHigh")
    assert latency["labels"]["window"] == "12m"
    # A platform window of 5 s cannot hold two scrapes 60 s apart: raised to 4 scrape intervals.
    errors = next(a for a in alerts if a["alert"] == "ServiceErrorRateHigh")
    assert "[4m]" in errors["expr"]


def test_a_window_shorter_than_four_scrapes_is_raised_and_the_annotation_says_so() -> None:
    burns = [
        a
        for a in _alerts(_generated(scrape_interval_s=1))
        if a["alert"] == "CheckoutErrorBudgetBurn"
    ]
    assert burns[0]["labels"]["window"] == "10s/4s"
    assert "ratio_rate4s{" in burns[0]["expr"]
    assert "2s raised to 4 scrape intervals (1s)" in burns[0]["annotations"]["compression"]
    assert burns[1]["labels"]["window"] == "30s/5s"
    assert "raised" not in burns[1]["annotations"]["compression"]


def test_a_journey_without_selectors_gets_no_journey_alerts(tmp_path: Path) -> None:
    text = SLO.read_text(encoding="utf-8")
    text = re.sub(r"^    (browse|product|cart): .*\n", "", text, flags=re.MULTILINE)
    path = tmp_path / "one.slo.yaml"
    path.write_text(text, encoding="utf-8")
    alerts = _alerts(rule_file(load_slo(path), scrape_interval_s=0.5))
    assert {a["labels"].get("journey") for a in alerts} == {"checkout", None}


def test_an_alerted_journey_no_objective_names_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.slo.yaml"
    path.write_text(
        SLO.read_text(encoding="utf-8").replace("    cart: {", "    chart: {"), encoding="utf-8"
    )
    line = 1 + path.read_text(encoding="utf-8").splitlines().index(
        "    chart: {service: gateway, method: POST, route: /api/cart}"
    )
    with pytest.raises(
        ConfigError,
        match=rf"bad\.slo\.yaml:{line}: field alerting\.journeys\.chart: .*did you mean 'cart'",
    ):
        load_slo(path)


def test_durations_and_alert_names() -> None:
    assert [duration(s) for s in (3600, 720, 5400, 2, 0.5, 10800)] == [
        "1h",
        "12m",
        "1h30m",
        "2s",
        "500ms",
        "3h",
    ]
    assert alert_name("product-page", "LatencyHigh") == "ProductPageLatencyHigh"
    assert alert_name("2fa", "ErrorBudgetBurn") == "Journey2faErrorBudgetBurn"


def _series(labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{{{inner}}}", "values": values}


def _requests(route: str, method: str, status: str, per_step: int, **extra: str) -> dict[str, str]:
    labels = {
        "__name__": "shakeout_http_requests_total",
        "job": "replicas",
        "service": extra.get("service", "gateway"),
        "zone": "a",
        "replica": "gateway-a-1",
        "version": "v1",
        "method": method,
        "route": route,
        "status": status,
    }
    return _series(labels, f"0+{per_step}x120")  # one sample each 0.5 s for 60 s


CHECKOUT = {
    "journey": "checkout",
    "service": "gateway",
    "objective": "error rate < 0.5%",
}


def _unit_tests() -> dict[str, Any]:
    """promtool rules tests: input series and the alerts expected from them."""
    return {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "500ms",
        "tests": [
            {  # checkout: 10% of requests fail (20x the 0.5% budget): the page and the ticket
                "interval": "500ms",
                "input_series": [
                    _requests("/api/checkout", "POST", "201", 18),
                    _requests("/api/checkout", "POST", "503", 2),
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "20s",
                        "alertname": "CheckoutErrorBudgetBurn",
                        "exp_alerts": [
                            {"exp_labels": {**CHECKOUT, "severity": "page", "window": "10s/2s"}},
                            {"exp_labels": {**CHECKOUT, "severity": "ticket", "window": "30s/5s"}},
                        ],
                    },
                    {
                        "eval_time": "20s",
                        "alertname": "ServiceErrorRateHigh",
                        "exp_alerts": [{"exp_labels": {"service": "gateway", "severity": "page"}}],
                    },
                ],
            },
            {  # checkout: 0.2% of requests fail, within the budget: quiet
                "interval": "500ms",
                "input_series": [
                    _requests("/api/checkout", "POST", "201", 499),
                    _requests("/api/checkout", "POST", "503", 1),
                ],
                "alert_rule_test": [
                    {"eval_time": t, "alertname": "CheckoutErrorBudgetBurn", "exp_alerts": []}
                    for t in ("5s", "20s", "50s")
                ],
            },
            {  # one error among three requests in 5 s: too few requests to page
                "interval": "500ms",
                "input_series": [
                    _series(
                        {
                            "__name__": "shakeout_http_requests_total",
                            "service": "payments",
                            "method": "POST",
                            "route": "/charges",
                            "status": status,
                        },
                        values,
                    )
                    for status, values in (("201", "0x10 1x10 2x40"), ("502", "0x15 1x45"))
                ],
                "alert_rule_test": [
                    {"eval_time": t, "alertname": "ServiceErrorRateHigh", "exp_alerts": []}
                    for t in ("6s", "8s", "10s")
                ],
            },
            {  # zone b's node stopped heartbeating; crash loop of orders v2 from 1.5 s on
                "interval": "500ms",
                "input_series": [
                    _series({"__name__": "shakeout_zone_ready", "zone": "a"}, "1x40"),
                    _series({"__name__": "shakeout_zone_ready", "zone": "b"}, "1x3 0x36"),
                    _series(
                        {
                            "__name__": "shakeout_replicas_crashlooping",
                            "service": "orders",
                            "version": "v2",
                        },
                        "0x2 1x37",
                    ),
                    _series(
                        {
                            "__name__": "shakeout_replicas_crashlooping",
                            "service": "orders",
                            "version": "v1",
                        },
                        "0x40",
                    ),
                ],
                "alert_rule_test": [
                    {"eval_time": "1s", "alertname": "ZoneDown", "exp_alerts": []},
                    {"eval_time": "1s", "alertname": "ReplicaCrashLooping", "exp_alerts": []},
                    {
                        "eval_time": "5s",
                        "alertname": "ZoneDown",
                        "exp_alerts": [{"exp_labels": {"zone": "b", "severity": "page"}}],
                    },
                    {
                        "eval_time": "5s",
                        "alertname": "ReplicaCrashLooping",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "service": "orders",
                                    "version": "v2",
                                    "severity": "page",
                                }
                            }
                        ],
                    },
                ],
            },
        ],
    }


def test_rules_fire_on_outages_and_stay_quiet_otherwise(promtool: str, tmp_path: Path) -> None:
    document = _generated()
    for alert in _alerts(document):
        del alert["annotations"]  # compared exactly by promtool; asserted above instead
    (tmp_path / "rules.yml").write_text(dump_rules(document), encoding="utf-8")
    tests = tmp_path / "rules.test.yml"
    tests.write_text(yaml.safe_dump(_unit_tests(), sort_keys=False), encoding="utf-8")
    _run(promtool, "test", "rules", str(tests))


def test_fragile_rules_pass_promtool_but_lack_runbooks_and_the_fast_page(promtool: str) -> None:
    _run(promtool, "check", "rules", str(FRAGILE_RULES))
    document = yaml.safe_load(FRAGILE_RULES.read_text(encoding="utf-8"))
    alerts = _alerts(document)
    assert {a["alert"] for a in alerts} >= set(PLATFORM_ALERTS)
    assert not [a["alert"] for a in alerts if "runbook_url" in a["annotations"]]
    burns = [a for a in alerts if a["alert"].endswith("ErrorBudgetBurn")]
    assert {a["labels"]["journey"] for a in burns} == set(JOURNEYS)
    assert {(a["labels"]["window"], a["labels"]["severity"]) for a in burns} == {
        ("30s/5s", "ticket")
    }
    text = FRAGILE_RULES.read_text(encoding="utf-8")
    assert "rate10s" not in text
    assert "rate2s{" not in text.replace("p95_rate2s{", "")


def test_generated_alertmanager_config_passes_amtool(amtool: str, tmp_path: Path) -> None:
    config = alertmanager_config(
        {"oncall": "http://127.0.0.1:9093/alerts/oncall", "audit": "http://127.0.0.1:9/a"},
        default="oncall",
        credentials_file=str(tmp_path / "receiver.token"),
    )
    route = config["route"]
    assert route["receiver"] == "oncall"
    assert route["group_by"][0] == "alertname"
    assert (route["group_wait"], route["group_interval"]) == ("0s", "1s")
    for receiver in config["receivers"]:
        (webhook,) = receiver["webhook_configs"]
        assert webhook["send_resolved"] is True
        assert webhook["http_config"]["authorization"]["credentials_file"].endswith(".token")
    path = tmp_path / "alertmanager.yml"
    path.write_text(dump_yaml(config), encoding="utf-8")
    _run(amtool, "check-config", str(path))
    bare = alertmanager_config({"oncall": "http://x/y"}, default="oncall", credentials_file=None)
    assert "http_config" not in bare["receivers"][0]["webhook_configs"][0]
    with pytest.raises(ValueError, match="default receiver 'pager'"):
        alertmanager_config({"oncall": "http://x/y"}, default="pager", credentials_file=None)


def test_fragile_alertmanager_config_passes_amtool_and_notifies_no_one(amtool: str) -> None:
    _run(amtool, "check-config", str(FRAGILE_ALERTMANAGER))
    config = yaml.safe_load(FRAGILE_ALERTMANAGER.read_text(encoding="utf-8"))
    assert config["route"]["receiver"] == "null"
    assert "routes" not in config["route"]
    assert config["receivers"] == [{"name": "null"}]


def test_rules_command_writes_stdout_or_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["rules", str(SLO)]) == 0
    captured = capsys.readouterr()
    document = yaml.safe_load(captured.out)
    assert [g["name"] for g in document["groups"]] == ["shakeout-slo", "shakeout-platform"]
    if shutil.which("promtool"):
        assert "promtool check rules: SUCCESS" in captured.err
    out = tmp_path / "shop.rules.yml"
    url = "https://runbooks.example/{anchor}"
    assert (
        cli.main(["rules", str(SLO), "--production", "--out", str(out), "--runbook-url", url]) == 0
    )
    assert f"wrote 16 alerts (production windows) to {out}" in capsys.readouterr().out
    alerts = _alerts(yaml.safe_load(out.read_text(encoding="utf-8")))
    assert {a["annotations"]["runbook_url"] for a in alerts} >= {
        "https://runbooks.example/zonedown"
    }
    assert any(a["labels"].get("window") == "1h/12m" for a in alerts)


def test_rules_command_names_the_field_of_a_bad_slo_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.slo.yaml"
    path.write_text(
        SLO.read_text(encoding="utf-8").replace("    cart: {", "    chart: {"), encoding="utf-8"
    )
    assert cli.main(["rules", str(path)]) == 2
    captured = capsys.readouterr()
    assert "field alerting.journeys.chart" in captured.err
    assert captured.out == ""
    plain = tmp_path / "plain.slo.yaml"
    plain.write_text("error_rate:\n  - {journey: checkout, below_pct: 1}\n", encoding="utf-8")
    assert cli.main(["rules", str(plain), "--production"]) == 2
    assert "--production needs an alerting section" in capsys.readouterr().err
    assert cli.main(["rules", str(SLO), "--scrape-interval", "0"]) == 2
    assert "--scrape-interval 0: give seconds above 0" in capsys.readouterr().err
    plain.write_text("alerting: {runbook_url: 'https://x/{name}'}\n", encoding="utf-8")
    assert cli.main(["rules", str(plain)]) == 2
    assert "field alerting.runbook_url" in capsys.readouterr().err


def test_rule_file_without_an_slo_file_has_the_platform_group_only() -> None:
    document = rule_file(None, scrape_interval_s=0.5)
    assert [g["name"] for g in document["groups"]] == ["shakeout-platform"]
    assert [a["alert"] for a in _alerts(document)] == list(PLATFORM_ALERTS)
    assert rule_file(SLOFile(), scrape_interval_s=0.5)["groups"][0]["rules"] == []
