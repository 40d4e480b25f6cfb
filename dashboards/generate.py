#!/usr/bin/env python3
"""Writes vigie's Grafana dashboards (dashboards/*.json) from one place.

Dashboards are code: edit this file, run `python3 dashboards/generate.py`,
commit both. The test suite lints the JSON and sends every panel query to a
real Prometheus that scraped vigie (tests/it/prometheus.rs).
"""
import json
import pathlib
import tomllib

HERE = pathlib.Path(__file__).resolve().parent
# The rule catalogue: rule names, descriptions and per-profile settings
# come from it, so that a panel says what the report and `vigie rules` say.
CATALOGUE = tomllib.loads((HERE.parent / "analyze" / "catalogue" / "rules.toml").read_text())
RULES = {r["id"]: r for r in CATALOGUE["rule"]}


def rule_title(rule_id):
    """The rule's English name in the catalogue."""
    return RULES[rule_id]["name"]["en"]


def rule_text(rule_id, lead=""):
    """A panel description from the catalogue: what the rule measures and,
    per profile, when it is crossed."""
    r = RULES[rule_id]
    sym = {"above": ">", "at_least": ">=", "below": "<"}[r["compare"]]
    settings = []
    for name, p in r["profiles"].items():
        if p.get("enabled", True):
            settings.append(f"{name}: {p['status']} if {sym} {p['threshold']:g}")
    text = f"{lead}{r['description']['en']} (rule {rule_id}; {', '.join(settings)}.)"
    return text
DS = {"type": "prometheus", "uid": "${datasource}"}
SG = 'site=~"$site",group=~"$group"'


def query_var(name, label, query):
    """A multi-value template variable filled from a label's values."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": name},
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        # All of them, until the reader picks (Grafana's schema wants a
        # current value).
        "current": {"text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "sort": 1,
    }


def variables(with_group=True):
    v = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            # The provisioned data source (deploy/grafana); Grafana falls
            # back to the default one where there is none of that uid.
            "current": {"text": "Prometheus (vigie)", "value": "vigie-prometheus"},
            "hide": 0,
        },
        query_var("site", "Site", "label_values(vigie_finding_status, site)"),
    ]
    if with_group:
        v.append(query_var("group", "Group", 'label_values(vigie_finding_status{site=~"$site"}, group)'))
    else:
        # Kept so that every dashboard has the same variables; the pipeline
        # dashboard's metrics carry no group.
        v.append(
            {
                "name": "group",
                "label": "Group",
                "type": "custom",
                "query": "site",
                "current": {"text": "site", "value": "site"},
                "options": [{"text": "site", "value": "site", "selected": True}],
                "hide": 2,
            }
        )
    return v


class Board:
    def __init__(self, uid, title, description, tags, with_group=True):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.with_group = with_group
        self.panels = []
        self.x = self.y = 0

    def panel(self, kind, title, description, unit, targets, w=12, h=8, **extra):
        if self.x + w > 24:
            self.x, self.y = 0, self.y + h
        p = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": {},
            "targets": [
                {
                    "refId": chr(ord("A") + i),
                    "datasource": DS,
                    "expr": expr,
                    "legendFormat": legend,
                    **({"format": "heatmap"} if kind == "heatmap" else {}),
                    **({"instant": True, "format": "table"} if kind == "table" else {}),
                }
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        p["fieldConfig"]["defaults"].update(extra.pop("defaults", {}))
        p["options"].update(extra.pop("options", {}))
        p.update(extra)
        self.panels.append(p)
        self.x += w
        return p

    def json(self):
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["vigie"] + self.tags,
            "editable": True,
            "schemaVersion": 39,
            "version": 1,
            "time": {"from": "now-90d", "to": "now"},
            "refresh": "5m",
            "timezone": "browser",
            "templating": {"list": variables(self.with_group)},
            "annotations": {"list": []},
            "links": [
                {
                    "type": "dashboards",
                    "tags": ["vigie"],
                    "title": "vigie",
                    "asDropdown": True,
                    "icon": "external link",
                    "includeVars": True,
                    "keepTime": True,
                    "targetBlank": False,
                    "tooltip": "",
                }
            ],
            "panels": self.panels,
        }


STATUS_MAPPINGS = {
    "mappings": [
        {
            "type": "value",
            "options": {
                "-1": {"text": "insufficient data", "color": "gray"},
                "0": {"text": "ok", "color": "green"},
                "1": {"text": "attention", "color": "orange"},
                "2": {"text": "breach", "color": "red"},
            },
        }
    ]
}


def intensity():
    b = Board(
        "vigie-intensity",
        "vigie / Work intensity",
        "Units per hour, intensification against the baseline weeks and the spread of intervals "
        "between scans, for published groups only (k-anonymous). Definitions: docs/metrics.md.",
        ["intensity"],
    )
    b.panel(
        "timeseries",
        "Units per hour (median shift)",
        "Median over the latest ISO week's shifts of units handled per effective hour (span minus "
        "declared breaks), per published group.",
        "short",
        [(f'vigie_units_per_hour{{{SG},percentile="50"}}', "{{site}} {{group}}")],
    )
    b.panel(
        "timeseries",
        "Units per hour: 10th to 90th percentile",
        "Spread of units per hour over the latest week's shifts: the 10th and 90th percentiles per group.",
        "short",
        [
            (f'vigie_units_per_hour{{{SG},percentile="10"}}', "p10 {{site}} {{group}}"),
            (f'vigie_units_per_hour{{{SG},percentile="90"}}', "p90 {{site}} {{group}}"),
        ],
    )
    b.panel(
        "timeseries",
        rule_title("cadence.intensification"),
        rule_text("cadence.intensification"),
        "percentunit",
        [(f'vigie_finding_observed{{{SG},rule="cadence.intensification"}}', "{{site}} {{group}}")],
    )
    for rule in ["cadence.target_raised", "cadence.within_shift_drift", "voice.pace_set_by_system"]:
        b.panel(
            "timeseries",
            rule_title(rule),
            rule_text(rule),
            "percentunit",
            [(f'vigie_finding_observed{{{SG},rule="{rule}"}}', "{{site}} {{group}}")],
        )
    b.panel(
        "timeseries",
        "Target in force, by process",
        "The group's daily median target (rate_target events), latest level, per process: over time "
        "this is the step series of the target. Days with fewer than k workers under a target are "
        "left out.",
        "short",
        [(f"vigie_target_units_per_hour{{{SG}}}", "{{site}} {{group}} {{process}}")],
        defaults={"custom": {"drawStyle": "line", "lineInterpolation": "stepAfter"}},
    )
    b.panel(
        "timeseries",
        "Pace after the latest dated change",
        "Median daily units per hour after the latest dated change (declared by the employer, or a "
        "step of the target) against before it, minus 1, per process; over time each new change "
        "shows as a new level. The report and aggregates/comparisons give its interval.",
        "percentunit",
        [(f"vigie_pace_change_relative{{{SG}}}", "{{site}} {{group}} {{process}} {{source}}")],
    )
    b.panel(
        "timeseries",
        "Achieved over target (median shift)",
        "Median over the latest ISO week's shifts with a target of units per hour divided by the "
        "target in force; under 100 % the median shift missed its target.",
        "percentunit",
        [(f"vigie_units_over_target{{{SG}}}", "{{site}} {{group}}")],
    )
    b.panel(
        "timeseries",
        "Shifts under their target",
        "Shifts of the latest ISO week whose units per hour were under the target in force.",
        "short",
        [(f"vigie_shifts_under_target{{{SG}}}", "{{site}} {{group}}")],
    )
    b.panel(
        "timeseries",
        "Time from a voice prompt to its confirmation",
        "Seconds from a voice_prompt to the scan that confirms it, 10th, 50th and 90th percentiles "
        "over the latest ISO week (interpolated in buckets).",
        "s",
        [
            (f'vigie_prompt_wait_seconds{{{SG},percentile="10"}}', "p10 {{site}} {{group}}"),
            (f'vigie_prompt_wait_seconds{{{SG},percentile="50"}}', "p50 {{site}} {{group}}"),
            (f'vigie_prompt_wait_seconds{{{SG},percentile="90"}}', "p90 {{site}} {{group}}"),
        ],
    )
    b.panel(
        "timeseries",
        "Share of time on tasks dictated at once",
        "Share of the effective time of the latest week's shifts with prompts spent on tasks whose "
        "prompt came at most 5 s after the previous confirmation.",
        "percentunit",
        [(f"vigie_dictated_share{{{SG}}}", "{{site}} {{group}}")],
    )
    b.panel(
        "heatmap",
        "Intervals between consecutive scans",
        "Distribution of the intervals between two scans of the same shift in the latest ISO week, "
        "by upper bound in seconds (cumulative counts). A mass under 1.25 s is rushed work.",
        "s",
        [(f"sum by (bound) (vigie_scan_intervals{{{SG}}})", "{{bound}}")],
        options={"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1},
    )
    b.panel(
        "timeseries",
        rule_title("cadence.rush_share"),
        rule_text("cadence.rush_share"),
        "percentunit",
        [(f'vigie_finding_observed{{{SG},rule="cadence.rush_share"}}', "{{site}} {{group}}")],
    )
    b.panel(
        "timeseries",
        rule_title("speed.speed_flags"),
        rule_text("speed.speed_flags"),
        "short",
        [(f'vigie_finding_observed{{{SG},rule="speed.speed_flags"}}', "{{site}} {{group}}")],
    )
    return b


def pauses():
    b = Board(
        "vigie-pauses",
        "vigie / Pauses and justification burden",
        "How pauses are classified and how often workers are asked to justify them, for published "
        "groups only. Definitions: docs/metrics.md.",
        ["pauses"],
    )
    b.panel(
        "timeseries",
        "Gaps between activity events, by class",
        "Gaps between consecutive activity events in the latest ISO week: micro (< 60 s), latency "
        "(60 s to 10 min), idle (10 min or more), break (inside a declared break).",
        "short",
        [(f"sum by (class) (vigie_gaps{{{SG}}})", "{{class}}")],
    )
    b.panel(
        "timeseries",
        "Requests to justify a pause",
        "justification_request events of the latest ISO week, per group.",
        "short",
        [(f"vigie_justification_requests{{{SG}}}", "{{site}} {{group}}")],
    )
    b.panel(
        "timeseries",
        rule_title("pause.justification_burden"),
        rule_text("pause.justification_burden"),
        "percentunit",
        [(f'vigie_finding_observed{{{SG},rule="pause.justification_burden"}}', "{{site}} {{group}}")],
    )
    b.panel(
        "timeseries",
        rule_title("pause.idle_flag_threshold"),
        rule_text("pause.idle_flag_threshold", "Seconds. "),
        "s",
        [(f'vigie_finding_observed{{{SG},rule="pause.idle_flag_threshold"}}', "{{site}} {{group}}")],
    )
    b.panel(
        "timeseries",
        "Justification requests by the gap they are about",
        "justification_request events of the latest ISO week by their gap_s: under 1 min, 1-3, "
        "3-5, 5-10 min, 10 min or more, not given. The CNIL's latency indicator covered gaps of 1 "
        "to 10 minutes.",
        "short",
        [(f"sum by (gap) (vigie_justification_gaps{{{SG}}})", "{{gap}}")],
    )
    for rule in ["pause.flags_during_breaks", "pause.latency_flags"]:
        b.panel(
            "stat",
            rule_title(rule),
            rule_text(rule),
            "short",
            [(f'sum(vigie_finding_observed{{{SG},rule="{rule}"}})', "flags")],
            w=12,
            h=5,
        )
    return b


def worktime():
    b = Board(
        "vigie-worktime",
        "vigie / Working-time compliance",
        "Working-time rules of the rule catalogue against the profile's limits: "
        + "; ".join(rule_title(i) for i in RULES if i.startswith("worktime."))
        + ". Definitions: docs/metrics.md (vigie rules).",
        ["worktime"],
    )
    b.panel(
        "table",
        "Working-time rules: status",
        "Latest status of each working-time rule per group: 0 ok, 1 attention, 2 breach, -1 insufficient data.",
        "none",
        [(f'vigie_finding_status{{{SG},rule=~"worktime.*"}}', "{{rule}}")],
        w=24,
        defaults=STATUS_MAPPINGS,
    )
    b.panel(
        "barchart",
        "Breaches by rule",
        "Worker-days, rests, worker-weeks or workers over the limit in the latest ISO week (by the "
        "lower bound of effective time), summed over the selected groups.",
        "short",
        [(f"sum by (rule) (vigie_worktime_breaches{{{SG}}})", "{{rule}}")],
        options={"xField": "rule"},
    )
    b.panel(
        "timeseries",
        "Groups in breach of a working-time rule",
        "Recorded by Prometheus (vigie:worktime_groups_in_breach:count): how many published groups "
        "have at least one working-time rule in breach.",
        "short",
        [('vigie:worktime_groups_in_breach:count{site=~"$site"}', "{{site}}")],
    )
    return b


def privacy():
    b = Board(
        "vigie-privacy",
        "vigie / Retention and privacy",
        "What vigie itself keeps and withholds: the age of the oldest record of each store tier "
        "against its retention, bytes per tier, and groups withheld under k.",
        ["privacy"],
        with_group=False,
    )
    b.panel(
        "timeseries",
        "Oldest record per store tier",
        "Age of the oldest record each tier of vigie's store holds (raw events, per-worker shift "
        "summaries, group aggregates). The purge keeps it under the tier's retention.",
        "s",
        [
            ("vigie_store_oldest_event_age_seconds", "{{tier}}"),
            ("vigie_store_retention_seconds", "retention {{tier}}"),
        ],
    )
    b.panel(
        "timeseries",
        "Store size per tier",
        "Bytes of Parquet files in each tier of vigie's store.",
        "bytes",
        [("vigie_store_bytes", "{{tier}}")],
    )
    b.panel(
        "timeseries",
        "Groups withheld for privacy",
        "Group-periods not published because they had fewer than k workers or would reveal one by "
        "subtraction.",
        "short",
        [('vigie_privacy_suppressed_groups{site=~"$site"}', "{{site}}")],
    )
    b.panel(
        "timeseries",
        rule_title("retention.individual_data"),
        rule_text("retention.individual_data", "Days. "),
        "d",
        [('vigie_finding_observed{site=~"$site",group="site",rule="retention.individual_data"}', "{{site}}")],
    )
    return b


def pipeline():
    b = Board(
        "vigie-pipeline",
        "vigie / Pipeline health",
        "vigie's own health: ingest rate, rejects by reason, consumer lag, write latency, analysis "
        "freshness and memory.",
        ["pipeline"],
        with_group=False,
    )
    b.panel(
        "timeseries",
        "Events ingested",
        "Unique events accepted at the door per second.",
        "ops",
        [("sum(rate(vigie_events_ingested_total[$__rate_interval]))", "events/s")],
    )
    b.panel(
        "timeseries",
        "Records rejected, by reason",
        "Records refused at the door per second, by reason code (docs/events.md).",
        "ops",
        [("sum by (reason) (rate(vigie_events_rejected_total[$__rate_interval]))", "{{reason}}")],
    )
    b.panel(
        "timeseries",
        "Consumer lag",
        "Messages between each partition's high watermark and vigie's next read.",
        "short",
        [("sum by (topic, partition) (vigie_consumer_lag_messages)", "{{topic}}/{{partition}}")],
    )
    b.panel(
        "timeseries",
        "Batch write duration (p99)",
        "99th percentile of the time to make a partition's batch durable (files fsynced and "
        "renamed, dead letters flushed).",
        "s",
        [
            (
                "histogram_quantile(0.99, sum by (le) (rate(vigie_batch_write_duration_seconds_bucket[$__rate_interval])))",
                "p99",
            )
        ],
    )
    b.panel(
        "stat",
        "Since the last analysis",
        "Time since the last successful analysis.",
        "s",
        [("time() - max(vigie_analysis_last_success_timestamp_seconds)", "age")],
    )
    b.panel(
        "timeseries",
        "Duplicates dropped",
        "Records dropped because their event id was already accepted, per second.",
        "ops",
        [("sum(rate(vigie_events_duplicate_total[$__rate_interval]))", "duplicates/s")],
    )
    b.panel(
        "timeseries",
        "Resident memory",
        "Resident memory of each vigie process.",
        "bytes",
        [("vigie_process_resident_memory_bytes", "{{instance}}")],
    )
    b.panel(
        "timeseries",
        "Series left out",
        "Series left out of the last publication to stay within the series budget (findings.json keeps them).",
        "short",
        [("sum by (kind) (vigie_metrics_series_dropped)", "{{kind}}")],
    )
    return b


def main():
    """Writes the dashboards; with --check, only says (exit 1) which
    committed file differs from what this generator and the rule
    catalogue make."""
    import sys

    check = "--check" in sys.argv[1:]
    stale = []
    for board in (intensity(), pauses(), worktime(), privacy(), pipeline()):
        path = HERE / f"{board.uid}.json"
        text = json.dumps(board.json(), indent=2, ensure_ascii=False) + "\n"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(HERE.parent)))
            continue
        path.write_text(text)
        print(f"wrote {path.relative_to(HERE.parent)} ({len(board.panels)} panels)")
    if stale:
        print("stale, run python3 dashboards/generate.py:", ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
