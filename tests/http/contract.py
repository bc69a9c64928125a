# SPDX-License-Identifier: Apache-2.0
"""contract.py - every answer the HTTP tests see, checked against
server/openapi.json (issue 9, item 3).

The harness calls check() for each response; problems are collected and the
test during which they appeared fails (run.py's post_checks). The rules:

- the path matches a documented path (literal segments before {params}); an
  unknown path must be a 404 and a known path with another method a 405, both
  in the Error shape; a CORS preflight is the OPTIONS answer of any path;
- the status is one the operation documents;
- a JSON body matches the documented schema, and objects are closed: a field
  the schema does not name is a problem (unless additionalProperties says
  otherwise), so answers cannot drift from the document unnoticed;
- formats uuid and date-time, enums, nullable, required, integer vs number.
"""

import json
import os
import re
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC_PATH = os.path.join(ROOT, "server", "openapi.json")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}

_doc = None
_routes = None
_lock = threading.Lock()
PROBLEMS = []


def doc():
    global _doc, _routes
    if _doc is None:
        with open(DOC_PATH, encoding="utf-8") as f:
            _doc = json.load(f)
        routes = []
        for path in _doc["paths"]:
            segs = path.strip("/").split("/")
            rx = "^/" + "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segs) + "/?$"
            routes.append((sum(s.startswith("{") for s in segs), re.compile(rx), path))
        routes.sort(key=lambda t: t[0])       # literal segments win over {params}
        _routes = routes
    return _doc


def resolve(node):
    d = doc()
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        node = d
        for part in ref[2:].split("/"):
            node = node[part]
        seen += 1
        if seen > 20:
            raise ValueError("$ref loop at %s" % ref)
    return node


def all_properties(schema, depth=0):
    """A schema's properties with those of its allOf members (they describe one object)."""
    schema = resolve(schema)
    props = dict(schema.get("properties", {}))
    for sub in schema.get("allOf", []) if depth < 10 else []:
        for k, v in all_properties(sub, depth + 1).items():
            props.setdefault(k, v)
    return props


def validate(schema, value, where, problems, depth=0, closed=True):
    """closed=False: an allOf member, whose siblings may name the other fields."""
    schema = resolve(schema)
    if depth > 30 or not schema:
        return
    if value is None:
        if not schema.get("nullable"):
            problems.append("%s: null, but the schema does not allow null" % where)
        return
    for sub in schema.get("allOf", []):
        validate(sub, value, where, problems, depth + 1, closed=False)
    t = schema.get("type")
    if t in ("integer", "number"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if t == "integer" and ok and isinstance(value, float):
            ok = value.is_integer()
        if not ok:
            problems.append("%s: expected %s, got %r" % (where, t, value))
            return
        if "minimum" in schema and value < schema["minimum"]:
            problems.append("%s: %r is under the minimum %r" % (where, value, schema["minimum"]))
        if "maximum" in schema and value > schema["maximum"]:
            problems.append("%s: %r is over the maximum %r" % (where, value, schema["maximum"]))
    elif t in TYPES and not isinstance(value, TYPES[t]):
        problems.append("%s: expected %s, got %s %s" % (where, t, type(value).__name__,
                                                        json.dumps(value)[:80]))
        return
    if "enum" in schema and value not in schema["enum"]:
        problems.append("%s: %r is not one of %s" % (where, value, schema["enum"]))
    if isinstance(value, str):
        fmt = schema.get("format")
        if fmt == "uuid" and not UUID_RE.match(value):
            problems.append("%s: %r is not a lower-case UUID" % (where, value))
        elif fmt == "date-time" and not TS_RE.match(value):
            problems.append("%s: %r is not an RFC 3339 date-time" % (where, value))
    if isinstance(value, dict):
        props = all_properties(schema)
        own = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in value:
                problems.append("%s: required field %r missing (has %s)" % (where, k, sorted(value)))
        extra_schema = schema.get("additionalProperties")
        for k, v in value.items():
            if k in own:
                validate(own[k], v, "%s.%s" % (where, k), problems, depth + 1)
            elif k in props:
                pass                     # an allOf member validates it
            elif isinstance(extra_schema, dict):
                validate(extra_schema, v, "%s.%s" % (where, k), problems, depth + 1)
            elif closed and extra_schema is not True and (props or extra_schema is False):
                problems.append("%s: field %r is not in the document" % (where, k))
    elif isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            before = len(problems)
            validate(schema["items"], v, "%s[%d]" % (where, i), problems, depth + 1)
            if len(problems) > before:   # one bad item says enough about the schema
                break


def find_path(path):
    doc()
    path = path.split("?", 1)[0]
    for _, rx, template in _routes:
        if rx.match(path):
            return template
    return None


def media_type(headers):
    return (headers.get("content-type") or "").split(";")[0].strip().lower()


def error_problems(where, status, headers, body):
    if media_type(headers) != "application/json":
        return ["%s: a %d answer should be a JSON error, Content-Type %r"
                % (where, status, headers.get("content-type"))]
    try:
        value = json.loads(body.decode("utf-8"))
    except ValueError:
        return ["%s: a %d answer is not JSON" % (where, status)]
    problems = []
    validate({"$ref": "#/components/schemas/Error"}, value, where, problems)
    return problems


def problems_of(method, path, status, headers, body, request_headers=None):
    """The ways one answer departs from the document ([] when it conforms)."""
    d = doc()
    template = find_path(path)
    where = "%s %s -> %d" % (method, template or path.split("?", 1)[0], status)
    req = {k.lower(): v for k, v in (request_headers or {}).items()}
    if method == "OPTIONS" and "origin" in req and "access-control-request-method" in req:
        if status in (204,):
            return []
        return error_problems(where, status, headers, body)      # CORS preflight refused
    if status == 413 and media_type(headers) == "text/html":
        return []            # libevent's own answer to a body over --max-body (see README)
    if template is None:
        if status != 404:
            return ["%s: the path is not in the document (an unknown path must answer 404)" % where]
        return error_problems(where, status, headers, body)
    item = d["paths"][template]
    op = item.get(method.lower()) or (item.get("get") if method == "HEAD" else None)
    if op is None:
        if status != 405:
            return ["%s: %s is not documented on %s (expected 405)" % (where, method, template)]
        return error_problems(where, status, headers, body)
    responses = op.get("responses", {})
    resp = responses.get(str(status)) or responses.get("%dXX" % (status // 100)) or \
        responses.get("default")
    if resp is None:
        return ["%s: status %d is not documented for %s %s (documented: %s)"
                % (where, status, method, template, ", ".join(sorted(responses)))]
    resp = resolve(resp)
    content = resp.get("content") or {}
    if method == "HEAD" or status in (204, 304) or not body:
        return []
    mt = media_type(headers)
    if not content:
        return ["%s: a %d answer with a body (%s) where the document has none" % (where, status, mt)]
    candidates = [k for k in content if k == mt or k == "*/*" or
                  (k.endswith("/*") and mt.startswith(k[:-1]))]
    if not candidates:
        return ["%s: Content-Type %r is not among the documented %s" % (where, mt, sorted(content))]
    if mt != "application/json" or "schema" not in content[candidates[0]]:
        return []
    try:
        value = json.loads(body.decode("utf-8"))
    except ValueError:
        return ["%s: the body is not JSON" % where]
    problems = []
    validate(content[candidates[0]]["schema"], value, where, problems)
    return problems


def check(method, path, status, headers, body, request_headers=None):
    """Records the problems of one answer (called by harness.Client for every response)."""
    try:
        found = problems_of(method, path, status, headers, body, request_headers)
    except Exception as e:  # noqa: BLE001 - a broken document is a problem too
        found = ["%s %s: checking against the document failed: %s: %s"
                 % (method, path, type(e).__name__, e)]
    if found:
        with _lock:
            PROBLEMS.extend(found)


def take():
    """The problems recorded since the last call (run.py: once per test)."""
    with _lock:
        out = PROBLEMS[:]
        del PROBLEMS[:]
    return out
