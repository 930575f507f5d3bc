"""Finds the metric names a PromQL expression reads, without a full PromQL parser.

Used by scripts/check_deploy.py to prove that every rule, dashboard, adapter and KEDA query reads
only series that some known source produces. Whether the expression parses at all is promtool's
job (check_deploy.py runs `promtool check rules` on every expression); this module only has to
tell metric names apart from everything else that looks like an identifier: function and
aggregation names, keywords, label names inside `{...}` and in `by (...)`/`on (...)` lists, and
durations. Names given as `{__name__="a"}` or `{__name__=~"a|b"}` count too.
"""

import re

KEYWORDS = {
    "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
    "group_left", "group_right", "inf", "nan", "start", "end",
}
# Keywords followed by a parenthesised list of label names, not expressions.
LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+"
    r"|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?"
)


class PromQLSyntaxError(ValueError):
    pass


def _tokens(expr):
    """Yields (kind, text): kind is 'ident', 'string', 'number' or 'punct'."""
    i, n = 0, len(expr)
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
        elif c == "#":  # comment to end of line
            while i < n and expr[i] != "\n":
                i += 1
        elif c in "\"'`":
            j = i + 1
            while j < n and expr[j] != c:
                j += 2 if (expr[j] == "\\" and c != "`") else 1
            if j >= n:
                raise PromQLSyntaxError(f"unterminated string in {expr!r}")
            yield "string", expr[i + 1:j]
            i = j + 1
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = _NUMBER.match(expr, i)
            yield "number", m.group(0)
            i = m.end()
        elif c.isalpha() or c in "_:":
            m = _IDENT.match(expr, i)
            yield "ident", m.group(0)
            i = m.end()
        else:
            two = expr[i:i + 2]
            if two in ("==", "!=", ">=", "<=", "=~", "!~"):
                yield "punct", two
                i += 2
            else:
                yield "punct", c
                i += 1


def metric_names(expr):
    """The set of metric names `expr` selects."""
    toks = list(_tokens(expr))
    names = set()
    i, n = 0, len(toks)
    while i < n:
        kind, text = toks[i]
        nxt = toks[i + 1] if i + 1 < n else (None, None)
        if kind == "punct" and text == "{":
            # Label matchers: only __name__ matchers name metrics.
            j = i + 1
            while j < n and toks[j] != ("punct", "}"):
                if toks[j] == ("ident", "__name__") and j + 2 < n and toks[j + 2][0] == "string":
                    op, value = toks[j + 1][1], toks[j + 2][1]
                    if op == "=":
                        names.add(value)
                    elif op == "=~":
                        if not re.fullmatch(r"[A-Za-z0-9_:|]+", value):
                            raise PromQLSyntaxError(f"__name__ regex too clever to check: {value!r}")
                        names.update(value.split("|"))
                j += 1
            i = j + 1
        elif kind == "punct" and text == "[":
            # Range or subquery: durations and ':' only.
            j = i + 1
            while j < n and toks[j] != ("punct", "]"):
                j += 1
            i = j + 1
        elif kind == "ident" and text.lower() in LABEL_LIST_KEYWORDS and nxt == ("punct", "("):
            depth, j = 0, i + 1
            while j < n:
                if toks[j] == ("punct", "("):
                    depth += 1
                elif toks[j] == ("punct", ")"):
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            i = j + 1
        elif kind == "ident" and (
            nxt == ("punct", "(")
            or (nxt[0] == "ident" and nxt[1].lower() in ("by", "without"))
        ):
            i += 1  # a function or aggregation (`sum by (x) (...)`): its arguments are read next
        elif kind == "ident" and text.lower() in KEYWORDS:
            i += 1
        elif kind == "ident":
            names.add(text)
            i += 1
        else:
            i += 1
    return names


if __name__ == "__main__":  # a few self-checks: python3 scripts/promql_names.py
    cases = {
        'sum by (namespace, pod) (rate(a_total{x="b"}[5m] offset 1h30m))': {"a_total"},
        "topk(10, ns:m:avg1m{namespace=~\"$ns\"}) and on (pod) group_left (w) kube_pod_owner": {
            "ns:m:avg1m", "kube_pod_owner"},
        'label_replace(up, "a", "$1", "b", "(.*)") > bool 0.5e3': {"up"},
        '{__name__=~"pod_a|pod_b", namespace="x"}': {"pod_a", "pod_b"},
        "vector(0.7 * 1.1) or ceil(sum(vllm:num_requests_waiting[1m:15s])) / 5": {
            "vllm:num_requests_waiting"},
        "absent(up{job=\"x\"}) unless inf": {"up"},
    }
    for e, want in cases.items():
        got = metric_names(e)
        assert got == want, (e, got, want)
    print("promql_names: ok")
