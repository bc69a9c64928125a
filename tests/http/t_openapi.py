# SPDX-License-Identifier: Apache-2.0
"""The machine-readable contract (server/openapi.json) against the route table in
server/router.c and against real answers of the server."""

import json
import os
import re
import uuid

from badges import badge_server
import contract
from harness import Failure, check, eq, expect, fail, test

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC_PATH = os.path.join(ROOT, "server", "openapi.json")
ROUTER_PATH = os.path.join(ROOT, "server", "router.c")
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ROUTE_RE = re.compile(r'\{EVHTTP_REQ_([A-Z]+),\s*"([^"]+)",([^{}]*)\}')


def load_doc():
    try:
        with open(DOC_PATH, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail("cannot read %s: %s" % (DOC_PATH, e))


def router_routes():
    """[(method, pattern, public, success_status)] from the C route table."""
    with open(ROUTER_PATH, encoding="utf-8") as f:
        src = f.read()
    m = re.search(r"static const struct route routes\[\] = \{(.*?)\n\};", src, re.S)
    check(m is not None, "router.c: the routes[] table was not found")
    table = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    out = []
    for method, pattern, rest in ROUTE_RE.findall(table):
        fields = [x.strip() for x in rest.split(",") if x.strip()]
        check(len(fields) == 4, "router.c: cannot read the route %s %s (%r)" % (method, pattern, rest))
        out.append((method.lower(), pattern, "ROUTE_PUBLIC" in fields[2], fields[3]))
    check(len(out) >= 40, "router.c: only %d routes parsed" % len(out))
    return out


def norm(path):
    return re.sub(r"\{[^}]*\}", "{}", path)


def resolve(doc, node):
    seen = 0
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        check(ref.startswith("#/"), "non-local $ref %r" % ref)
        node = doc
        for part in ref[2:].split("/"):
            if not isinstance(node, dict) or part not in node:
                fail("unresolved $ref %r" % ref)
            node = node[part]
        seen += 1
        check(seen < 20, "$ref loop at %r" % ref)
    return node


def operations(doc):
    for path, item in doc["paths"].items():
        for method, o in item.items():
            if method in METHODS:
                yield path, method, item, o


def all_refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from all_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from all_refs(v)


@test
def openapi_matches_router(env):
    doc = load_doc()
    eq(doc.get("openapi"), "3.0.3", "openapi version")
    check(isinstance(doc.get("paths"), dict) and doc["paths"], "the document has no paths")
    for ref in set(all_refs(doc)):
        resolve(doc, {"$ref": ref})
    schemes = doc.get("components", {}).get("securitySchemes", {})
    check(any(s.get("type") == "http" and s.get("scheme") == "bearer" for s in schemes.values()),
          "no bearer security scheme")
    check(doc.get("security"), "no default security requirement")
    for name in ("Error", "User", "Rubric", "Credential", "Artifact", "Submission", "Result",
                 "ReviewClaim", "ScoreBody", "Anchor", "CalibrationSession", "Qualification"):
        check(name in doc["components"]["schemas"], "component schema %s missing" % name)

    routes = router_routes()
    doc_ops = {}
    for path, method, item, o in operations(doc):
        key = (method, norm(path))
        check(key not in doc_ops, "two document paths for %s %s" % (method.upper(), norm(path)))
        doc_ops[key] = (path, item, o)
    router_ops = {(m, norm(p)): (p, public, status) for m, p, public, status in routes}
    problems = []
    for key, (pattern, public, status) in sorted(router_ops.items()):
        if key not in doc_ops:
            problems.append("router has %s %s, the document does not" % (key[0].upper(), pattern))
            continue
        path, item, o = doc_ops[key]
        if public != (o.get("security") == []):
            problems.append("%s %s: public in the router is %s, in the document %s"
                            % (key[0].upper(), path, public, o.get("security") == []))
        if status not in o.get("responses", {}):
            problems.append("%s %s: the router's success status %s is not documented"
                            % (key[0].upper(), path, status))
        if not public and "401" not in o.get("responses", {}):
            problems.append("%s %s: 401 not documented" % (key[0].upper(), path))
        # every {name} of the path is a declared path parameter
        params = [resolve(doc, p) for p in item.get("parameters", []) + o.get("parameters", [])]
        declared = {p["name"] for p in params if p.get("in") == "path"}
        wanted = set(re.findall(r"\{([^}]+)\}", path))
        if declared != wanted:
            problems.append("%s %s: path parameters %s declared, %s in the path"
                            % (key[0].upper(), path, sorted(declared), sorted(wanted)))
        for code, r in o.get("responses", {}).items():
            if code[0] in "45" and code != "416":
                r = resolve(doc, r)
                sch = r.get("content", {}).get("application/json", {}).get("schema")
                sch = resolve(doc, sch) if sch is not None else {}
                if sch is not doc["components"]["schemas"]["Error"] and "error" not in sch.get(
                        "required", []):
                    problems.append("%s %s: response %s is not the Error schema"
                                    % (key[0].upper(), path, code))
    for key, (path, _, _) in sorted(doc_ops.items()):
        if key not in router_ops:
            problems.append("the document has %s %s, the router does not" % (key[0].upper(), path))
    if problems:
        fail("openapi.json vs router.c:\n" + "\n".join(problems))
    with open(os.path.join(ROOT, "server", "API.md"), encoding="utf-8") as f:
        first = f.readline()
    check("server/openapi.json" in first, "server/API.md's first line should point to "
          "server/openapi.json, got %r" % first)


# -- answers against schemas: the strict validator of contract.py (closed objects) --

def validate(doc, schema, value, where, problems, depth=0):
    contract.validate(schema, value, where, problems, depth)


def answer_schema(doc, path, method, status):
    o = doc["paths"][path][method]
    r = resolve(doc, o["responses"][str(status)])
    return r["content"]["application/json"]["schema"]


def conforms(doc, r, path, method="get"):
    body = expect(r, tuple(int(c) for c in doc["paths"][path][method]["responses"] if c.isdigit()))
    check(r.header("content-type", "").startswith("application/json"),
          "%s: Content-Type %r" % (r.describe(), r.header("content-type")))
    problems = []
    validate(doc, answer_schema(doc, path, method, r.status), body,
             "%s %s (%d)" % (method.upper(), path, r.status), problems)
    if problems:
        raise Failure("answer does not match server/openapi.json:\n" + "\n".join(problems[:20]))
    return body


@test
def openapi_answers_match_schemas(env):
    doc = load_doc()
    lead = env.user(["lead"], org="OpenAPI Org")
    earner = env.user(["earner"], org="OpenAPI Earners")
    assessor = env.user(["assessor"], org="OpenAPI Assessors")
    anon = env.admin.c.anon()

    conforms(doc, anon.get("/healthz"), "/healthz")
    conforms(doc, anon.get("/readyz"), "/readyz")
    conforms(doc, env.admin.c.get("/v1/me"), "/v1/me")
    conforms(doc, earner.c.get("/v1/me"), "/v1/me")

    rub = env.rubric(lead, "OpenAPI rubric %d" % env.uniq())
    conforms(doc, lead.c.get("/v1/rubrics/" + rub["id"]), "/v1/rubrics/{id}")
    conforms(doc, lead.c.get("/v1/rubrics/%s/calibration" % rub["id"]), "/v1/rubrics/{id}/calibration")
    cred = env.credential(lead, rub["id"], videos=1)
    conforms(doc, earner.c.get("/v1/credentials/" + cred["id"]), "/v1/credentials/{id}")
    conforms(doc, earner.c.get("/v1/credentials"), "/v1/credentials")
    env.grant(lead, cred["id"], assessor)
    conforms(doc, assessor.c.get("/v1/me/qualifications"), "/v1/me/qualifications")

    ev = env.evidence(earner.c, video_size=256, videos=1)
    art = ev[0][0]
    conforms(doc, earner.c.get("/v1/artifacts/" + art["id"]), "/v1/artifacts/{id}")
    sub = env.submit(earner.c, cred["id"], [a["id"] for a, _ in ev])
    conforms(doc, earner.c.get("/v1/submissions/" + sub["id"]), "/v1/submissions/{id}")
    conforms(doc, earner.c.get("/v1/submissions"), "/v1/submissions")

    claim = assessor.c.post("/v1/reviews/claim", {"credential_id": cred["id"]})
    eq(claim.status, 200, "claim of the queued submission")
    rv = conforms(doc, claim, "/v1/reviews/claim", "post")
    conforms(doc, assessor.c.get("/v1/reviews/" + rv["id"]), "/v1/reviews/{id}")
    conforms(doc, lead.c.get("/v1/reviews/" + rv["id"]), "/v1/reviews/{id}")
    r = assessor.c.post("/v1/reviews/%s/scores" % rv["id"],
                        {"scores": env.scores({}), "feedback": "Clear routines; keep it up."})
    scored = conforms(doc, r, "/v1/reviews/{id}/scores", "post")
    eq(scored.get("verdict"), "pass", "verdict")
    conforms(doc, earner.c.get("/v1/submissions/" + sub["id"]), "/v1/submissions/{id}")
    # badges (issue 12): issued by a server with ACCORD_PUBLIC_URL (tests/http/badges.py)
    bs = badge_server(env)
    b_anon, b_earner, b_lead = anon.on(bs), earner.on(bs), lead.on(bs)
    conforms(doc, b_anon.get("/v1/awards/" + scored["award_id"]), "/v1/awards/{id}")
    conforms(doc, b_anon.get("/.well-known/jwks.json"), "/.well-known/jwks.json")
    conforms(doc, b_anon.get("/v1/issuer"), "/v1/issuer")
    conforms(doc, b_anon.get("/v1/achievements/" + cred["id"]), "/v1/achievements/{id}")
    conforms(doc, b_anon.get("/v1/issuer/revocations"), "/v1/issuer/revocations")
    conforms(doc, b_earner.get("/v1/me/awards"), "/v1/me/awards")
    conforms(doc, b_anon.get("/v1/earners/%s/badges" % earner.id), "/v1/earners/{id}/badges")
    conforms(doc, b_earner.get("/v1/me/awards/%s/badge.json" % scored["award_id"]),
             "/v1/me/awards/{id}/badge.json")
    conforms(doc, b_earner.request("PUT", "/v1/me/awards/" + scored["award_id"],
                                   json_body={"name_display": "initials"}), "/v1/me/awards/{id}", "put")
    conforms(doc, b_lead.request("PUT", "/v1/credentials/%s/badge" % cred["id"],
                                 json_body={"valid_days": 365}), "/v1/credentials/{id}/badge", "put")
    conforms(doc, b_lead.get("/v1/stacks"), "/v1/stacks")
    conforms(doc, b_lead.get("/v1/reports/stacks"), "/v1/reports/stacks")

    conforms(doc, lead.c.get("/v1/anchors?rubric_id=" + rub["id"]), "/v1/anchors")
    conforms(doc, lead.c.get("/v1/reports/routing"), "/v1/reports/routing")
    conforms(doc, lead.c.get("/v1/reports/assessors?rubric_id=" + rub["id"]), "/v1/reports/assessors")
    conforms(doc, lead.c.get("/v1/reports/agreement?credential_id=" + cred["id"]),
             "/v1/reports/agreement")

    # errors: the documented Error shape
    r = earner.c.get("/v1/submissions/" + str(uuid.uuid4()))
    eq(r.status, 404, "unknown submission")
    conforms(doc, r, "/v1/submissions/{id}")
    r = anon.get("/v1/me")
    eq(r.status, 401, "no token")
    conforms(doc, r, "/v1/me")
    r = b_anon.get("/v1/awards/" + str(uuid.uuid4()))
    eq(r.status, 404, "unknown award")
    conforms(doc, r, "/v1/awards/{id}")


@test
def openapi_served_by_the_server(env):
    """GET /openapi.json is the document of the tree the binary was built from."""
    r = env.admin.c.anon().get("/openapi.json")
    expect(r, 200)
    check(r.header("content-type", "").startswith("application/json"),
          "/openapi.json Content-Type %r" % r.header("content-type"))
    check(r.json == load_doc(), "GET /openapi.json differs from server/openapi.json (a stale "
          "binary? the document is compiled in)")


@test
def openapi_checker_catches_drift(env):
    """The per-answer check (contract.py) is not a rubber stamp: an extra field, a
    wrong type, an undocumented status, an unknown path are each reported."""
    user = {"id": "0e0e0e0e-0000-4000-8000-000000000000", "email": "a@example.org", "name": "A",
            "roles": ["earner"], "org_id": None, "org": None, "auth": {"method": "token"}}
    j = {"content-type": "application/json"}

    def problems(status, body, path="/v1/me", method="GET"):
        return contract.problems_of(method, path, status, j, json.dumps(body).encode())

    eq(problems(200, user), [], "a conforming GET /v1/me answer")
    check(problems(200, dict(user, secret="x")), "an undocumented field must be reported")
    check(problems(200, dict(user, roles="earner")), "a wrong type must be reported")
    check(problems(200, {k: v for k, v in user.items() if k != "email"}),
          "a missing required field must be reported")
    check(problems(418, user), "an undocumented status must be reported")
    check(problems(200, user, path="/v1/nowhere"), "an unknown path answering 200 must be reported")
    err = {"error": {"code": "not_found", "message": "m", "request_id": "r"}}
    eq(problems(404, err, path="/v1/nowhere"), [], "a 404 Error for an unknown path")
    check(problems(404, {"error": {"code": "x", "message": "m"}}, path="/v1/nowhere"),
          "an error without request_id must be reported")
