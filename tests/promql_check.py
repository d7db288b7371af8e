"""Checks that dashboards and alerting rules ask Prometheus for series that exist.

A PromQL expression with a misspelt metric or label quietly returns nothing,
and the panel or alert looks fine until the day it is needed. These helpers
take every expression apart and ask a real Prometheus (through ``query``, a
function from expression to result list) whether each piece returns data:

- every vector selector alone (``metric{label="value"}``), so a typo inside
  ``absent(...)`` or one side of ``or`` cannot hide behind the other side;
- the whole expression, with Grafana variables substituted; alert expressions
  get ``bool`` after each comparison, so they return 0/1 per series instead of
  only the series that fire (whether an alert fires is promtool's unit tests' job);
- the labels a legend (``{{version}}``) or an annotation (``$labels.job``)
  shows exist on every result series, which catches ``by (verison)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

Query = Callable[[str], list[dict[str, Any]]]

IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# Words followed by a parenthesised list of label names, not of expressions.
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
AGGREGATIONS = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "topk", "bottomk"}
AGGREGATIONS |= {"quantile", "count_values"}
KEYWORDS = (
    LABEL_LIST_KEYWORDS | AGGREGATIONS | {"bool", "and", "or", "unless", "offset", "inf", "nan", "atan2"}
)
COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


class QueryError(Exception):
    """Prometheus refused the expression (syntax error, unknown function, ...)."""


def _skip_string(expr: str, start: int) -> int:
    quote = expr[start]
    index = start + 1
    while index < len(expr) and expr[index] != quote:
        index += 2 if expr[index] == "\\" else 1
    return index + 1


def _skip_group(expr: str, start: int, opening: str, closing: str) -> int:
    """Index after the bracket that closes the one at ``start`` (strings inside skipped)."""
    depth, index = 0, start
    while index < len(expr):
        char = expr[index]
        if char in "\"'`":
            index = _skip_string(expr, index)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise ValueError(f"unbalanced {opening}{closing} in {expr!r}")


def _next_non_space(expr: str, index: int) -> int:
    while index < len(expr) and expr[index].isspace():
        index += 1
    return index


def selectors(expr: str) -> list[str]:
    """The vector selectors of a PromQL expression, e.g. ``['up{job="x"}', 'app_info']``."""
    found: list[str] = []
    index = 0
    while index < len(expr):
        char = expr[index]
        if char in "\"'`":
            index = _skip_string(expr, index)
        elif char == "[":
            index = _skip_group(expr, index, "[", "]")
        elif char == "{":
            end = _skip_group(expr, index, "{", "}")
            found.append(expr[index:end])
            index = end
        elif char.isdigit() or (char == "." and expr[index + 1 : index + 2].isdigit()):
            match = re.compile(r"[0-9.]+(e[+-]?[0-9]+)?[a-z]*", re.I).match(expr, index)
            index = match.end()
        elif IDENTIFIER.match(expr, index):
            word = IDENTIFIER.match(expr, index).group()
            end = index + len(word)
            after = _next_non_space(expr, end)
            following = expr[after : after + 1]
            if word.lower() in LABEL_LIST_KEYWORDS and following == "(":
                index = _skip_group(expr, after, "(", ")")
            elif word.lower() in KEYWORDS or following == "(":
                index = end  # a keyword, or a function / aggregation name
            elif following == "{":
                close = _skip_group(expr, after, "{", "}")
                found.append(word + expr[after:close])
                index = close
            else:
                found.append(word)
                index = end
        else:
            index += 1
    return found


def boolify(expr: str) -> str:
    """``a > 0.5`` -> ``a > bool 0.5``: comparisons return 0/1 instead of filtering."""
    out: list[str] = []
    index = 0
    while index < len(expr):
        char = expr[index]
        if char in "\"'`":
            end = _skip_string(expr, index)
        elif char in "{[":
            end = _skip_group(expr, index, char, "}" if char == "{" else "]")
        else:
            operator = next((op for op in COMPARISONS if expr.startswith(op, index)), None)
            if operator is None:
                out.append(char)
                index += 1
                continue
            end = index + len(operator)
            already = re.compile(r"\s*bool\b").match(expr, end)
            out.append(operator if already else f"{operator} bool")
            index = end
            continue
        out.append(expr[index:end])
        index = end
    return "".join(out)


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Replace Grafana variables ($name, ${name}, [[name]]), longest names first."""
    for name in sorted(variables, key=len, reverse=True):
        value = variables[name]
        expr = expr.replace("${" + name + "}", value).replace("[[" + name + "]]", value)
        expr = re.sub(r"\$" + re.escape(name) + r"\b", lambda _, value=value: value, expr)
    return expr


def legend_labels(template: str) -> set[str]:
    return set(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", template or ""))


def annotation_labels(texts: Iterable[str]) -> set[str]:
    return {label for text in texts for label in re.findall(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)", text)}


def expression_problems(
    query: Query, where: str, expr: str, shown_labels: Iterable[str] = (), alert: bool = False
) -> list[str]:
    """Everything wrong with one expression, one line each; empty when it returns data."""
    problems = []
    for selector in selectors(expr):
        try:
            if not query(f"count({selector})"):
                problems.append(f"{where}: selector {selector} matches no series")
        except QueryError as error:
            problems.append(f"{where}: selector {selector}: {error}")
    evaluated = boolify(expr) if alert else expr
    try:
        result = query(evaluated)
    except QueryError as error:
        return [*problems, f"{where}: {error}: {evaluated}"]
    if not result:
        problems.append(f"{where}: no data for {evaluated}")
    for series in result:
        missing = set(shown_labels) - set(series["metric"])
        if missing:
            problems.append(f"{where}: result {series['metric']} lacks label(s) {sorted(missing)} it shows")
    return problems


# --- dashboards -------------------------------------------------------------------


def panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    found = []
    for panel in dashboard.get("panels", []):
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_structure_problems(name: str, dashboard: Mapping[str, Any]) -> list[str]:
    """What Grafana needs to import the dashboard anywhere: uid, schemaVersion, ids, datasource variable."""
    problems = []
    if not isinstance(dashboard.get("uid"), str) or not re.fullmatch(
        r"[a-zA-Z0-9_-]{1,40}", dashboard["uid"]
    ):
        problems.append(f"{name}: uid {dashboard.get('uid')!r} is not 1-40 of [a-zA-Z0-9_-]")
    if not isinstance(dashboard.get("schemaVersion"), int) or dashboard["schemaVersion"] < 30:
        problems.append(f"{name}: schemaVersion {dashboard.get('schemaVersion')!r} is not an integer >= 30")
    if not dashboard.get("title"):
        problems.append(f"{name}: no title")
    ids = [panel.get("id") for panel in panels(dashboard)]
    if any(not isinstance(i, int) for i in ids) or len(ids) != len(set(ids)):
        problems.append(f"{name}: panel ids {ids} are not unique integers")
    variables = dashboard.get("templating", {}).get("list", [])
    datasource_vars = [
        v["name"] for v in variables if v.get("type") == "datasource" and v.get("query") == "prometheus"
    ]
    if not datasource_vars:
        problems.append(f"{name}: no datasource variable of type prometheus")
    allowed = {f"${{{v}}}" for v in datasource_vars} | {f"${v}" for v in datasource_vars}
    users = [(f"panel {p.get('id')}", p) for p in panels(dashboard)]
    users += [
        (f"panel {p.get('id')} target {t.get('refId')}", t)
        for p in panels(dashboard)
        for t in p.get("targets", [])
    ]
    users += [(f"variable {v['name']}", v) for v in variables if v.get("type") == "query"]
    for where, user in users:
        datasource = user.get("datasource")
        uid = datasource.get("uid") if isinstance(datasource, dict) else datasource
        if datasource is not None and uid not in allowed:
            problems.append(
                f"{name} {where}: datasource {datasource!r} is hard-coded, not the datasource variable"
            )
    for panel in panels(dashboard):
        if panel.get("type") != "row" and not panel.get("targets"):
            problems.append(f"{name} panel {panel.get('id')}: no queries")
    return problems


def variable_values(query: Query, label_values_call: str, variables: Mapping[str, str]) -> list[str]:
    """Evaluate Grafana's ``label_values(selector, label)`` against Prometheus."""
    match = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", label_values_call)
    if not match:
        raise ValueError(f"unsupported variable query {label_values_call!r}")
    selector, label = substitute(match.group(1), variables), match.group(2)
    return sorted({series["metric"].get(label) for series in query(selector)} - {None})


def resolve_variables(
    query: Query, dashboard: Mapping[str, Any], rate_interval: str
) -> tuple[dict[str, str], list[str]]:
    """Values for the dashboard's variables, as Grafana would pick them by default.

    Query variables must find values, except "All"-able ones, whose allValue
    stands in when the label does not exist (namespace outside Kubernetes).
    """
    values = {"__rate_interval": rate_interval, "__interval": rate_interval, "__range": "5m"}
    problems = []
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable.get("type") == "datasource":
            values[name] = "prometheus"
            continue
        if variable.get("type") != "query":
            continue
        definition = variable.get("query")
        definition = definition.get("query") if isinstance(definition, dict) else definition
        found = variable_values(query, definition, values)
        if variable.get("includeAll"):
            values[name] = variable.get("allValue") or "|".join(found)
        elif found:
            values[name] = found[0]
        else:
            problems.append(f"variable {name}: {definition} finds no values")
            values[name] = ""
    return values, problems


def dashboard_problems(
    query: Query, name: str, dashboard: Mapping[str, Any], rate_interval: str
) -> list[str]:
    variables, problems = resolve_variables(query, dashboard, rate_interval)
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            where = f"{name} panel {panel['id']} {panel.get('title')!r} target {target.get('refId')}"
            expr = substitute(target["expr"], variables)
            problems += expression_problems(query, where, expr, legend_labels(target.get("legendFormat", "")))
    return problems


def rule_problems(query: Query, name: str, rules_file: Mapping[str, Any]) -> list[str]:
    problems = []
    for group in rules_file["groups"]:
        for rule in group["rules"]:
            label = rule.get("alert") or rule.get("record")
            shown = annotation_labels(rule.get("annotations", {}).values())
            problems += expression_problems(
                query, f"{name} {label}", rule["expr"], shown, alert="alert" in rule
            )
    return problems
