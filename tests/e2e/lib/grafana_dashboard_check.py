"""Checks dist/grafana/mlink.json against a real /metrics scrape (tests/e2e/test_grafana_dashboard.sh).

  selftest                    the name extraction on known expressions
  structure DASHBOARD         the JSON parses; every panel has a datasource and a query
  names DASHBOARD             the metric names its PromQL uses, one a line
  check DASHBOARD SCRAPE      every metric name and label name it uses exists in SCRAPE

A name is what PromQL selects: identifiers left once strings, label matchers {...},
ranges [...], grouping lists (by/without/on/ignoring/group_left/group_right (...)),
Grafana variables ($x, ${x}), function calls and keywords are taken out. _bucket, _sum
and _count need no special case: they are sample names of the exposition, and the
scrape is matched by sample name, so a summary's base name is found (its quantiles) but
a histogram's is not, as in Prometheus.
"""
import json
import re
import sys

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset", "inf", "nan", "atan2"}
# Labels Prometheus adds at scrape time (target labels), never in the exposition.
TARGET_LABELS = {"instance", "job"}


def queries(dash):
    """(where, expression) for every panel target and query variable."""
    out = []
    panels = list(dash.get("panels", []))
    for p in list(panels):
        panels += p.get("panels", [])  # collapsed rows keep theirs inside
    for p in panels:
        for t in p.get("targets", []):
            out.append((f"panel {p.get('title')!r}", t.get("expr", "")))
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else (q or "")
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", q)
            out.append((f"variable ${v['name']}", m.group(1) if m else q))
            if m:
                out.append((f"variable ${v['name']}", "label:" + m.group(2)))
    return out


def strip(expr):
    """expr without strings, variables, ranges; returns (rest, label names used)."""
    labels = set()
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    expr = re.sub(r"\$\{\w+(?::\w+)?\}|\$\w+", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    for m in re.finditer(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", m.group(1)))
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    grouping = r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)"
    for m in re.finditer(grouping, expr):
        labels |= set(re.findall(r"[a-zA-Z_]\w*", m.group(2)))
    expr = re.sub(grouping, " ", expr)
    return expr, labels


def names(expr):
    if expr.startswith("label:"):
        return set(), {expr[6:]}
    rest, labels = strip(expr)
    found = set()
    # Identifiers not glued to a number (1e6) or a dot, and not called like functions.
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)(\s*\()?", rest):
        if m.group(2) or m.group(1).lower() in KEYWORDS:
            continue
        found.add(m.group(1))
    return found, labels


def structure(dash):
    bad = []
    ds_vars = {v["name"] for v in dash.get("templating", {}).get("list", [])
               if v.get("type") == "datasource"}
    ids = set()
    for p in dash.get("panels", []):
        if p.get("type") == "row":
            continue
        title = p.get("title") or f"id {p.get('id')}"
        ds = p.get("datasource")
        if not isinstance(ds, dict) or ds.get("type") != "prometheus" or not ds.get("uid"):
            bad.append(f"panel {title!r}: no Prometheus datasource")
        elif ds["uid"].startswith("$") and ds["uid"].strip("${}") not in ds_vars:
            bad.append(f"panel {title!r}: datasource variable {ds['uid']} not defined")
        targets = [t for t in p.get("targets", []) if t.get("expr", "").strip()]
        if not targets:
            bad.append(f"panel {title!r}: no query")
        if p.get("id") in ids:
            bad.append(f"panel {title!r}: id {p.get('id')} used twice")
        ids.add(p.get("id"))
        if not all(k in p.get("gridPos", {}) for k in "hwxy"):
            bad.append(f"panel {title!r}: no gridPos")
    for key in ("title", "uid", "schemaVersion", "panels"):
        if key not in dash:
            bad.append(f"dashboard has no {key}")
    print(f"  {len(ids)} panels, each with a datasource and a query: {'no' if bad else 'yes'}")
    return bad


def scrape_names(path):
    samples, labels = set(), set()
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        m = re.match(r"([a-zA-Z_:][\w:]*)(\{.*\})?\s", line)
        if m:
            samples.add(m.group(1))
            labels |= set(re.findall(r'(\w+)="', m.group(2) or ""))
    return samples, labels


SELFTEST = [
    ('histogram_quantile(0.9, sum by (le, job) (rate(a_bucket{x="1",y=~"$v"}[5m])))',
     {"a_bucket"}, {"le", "job", "x", "y"}),
    ('rate(b_total[$__rate_interval]) / ignoring(link) group_left c * 1e6 > bool 0',
     {"b_total", "c"}, {"link"}),
    ('sum without (z) (d{w!="a{b}"}) or on(q) e_sum / e_count offset 5m', {"d", "e_sum", "e_count"},
     {"z", "w", "q"}),
    ("label:instance", set(), {"instance"}),
]


def main():
    if sys.argv[1] == "selftest":
        for expr, want, want_labels in SELFTEST:
            got = names(expr)
            if got != (want, want_labels):
                sys.exit(f"FAIL: {expr}: {got}, want {(want, want_labels)}")
        print(f"  name extraction: {len(SELFTEST)} known expressions ok")
        return
    cmd, dash_path = sys.argv[1], sys.argv[2]
    dash = json.load(open(dash_path))
    used, used_labels = {}, {}
    for where, q in queries(dash):
        n, l = names(q)
        for x in n:
            used.setdefault(x, where)
        for x in l:
            used_labels.setdefault(x, where)
    bad = []
    if cmd == "structure":
        bad = structure(dash)
        if not used:
            bad.append("no metric names found in the queries")
    elif cmd == "names":
        print("\n".join(sorted(used)))
    elif cmd == "check":
        samples, labels = scrape_names(sys.argv[3])
        for x in sorted(used):
            if x not in samples:
                bad.append(f"metric {x} ({used[x]}) is not in the scrape")
        for x in sorted(used_labels):
            if x not in labels | TARGET_LABELS:
                bad.append(f"label {x} ({used_labels[x]}) is on no metric of the scrape")
        print(f"  {len(used)} metric names and {len(used_labels)} label names used, "
              f"{len(bad)} missing from the scrape")
    for b in bad:
        print("FAIL: " + b, file=sys.stderr)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
