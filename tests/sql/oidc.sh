#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/sql/oidc.sh - SQL-level tests of single sign-on (db 011): the
# sign-in state machine (single use, expiry, same browser, the bound on
# sign-ins in flight) and who oidc_login_finish lets in, after the server
# verified the id_token (matched identity, email link, sign-up, domains,
# tenants, verified emails).
#
#   tests/sql/oidc.sh            start a cluster, test, remove it
#   DATABASE_URL=... tests/sql/oidc.sh   use an existing EMPTY database
#
# Prints "sqloidc: N passed, N failed" last; exits non-zero on any failure.
suite=sqloidc
. "$(dirname "$0")/lib.sh"

apply_migrations
create_scaffolding
ISS=https://idp.example.org
# h(x): a 64-hex hash; begin(state, provider key, browser): a sign-in started
q "CREATE FUNCTION h(x text) RETURNS text LANGUAGE sql AS \$\$ SELECT tk(x) \$\$;
   CREATE FUNCTION begin_(s text, p text, b text DEFAULT 'browser', inv text DEFAULT NULL) RETURNS json LANGUAGE sql AS
     \$\$ SELECT oidc_login_begin(g(p), h(s), h(b), repeat('n', 43) || s, repeat('v', 43),
                                 'https://accord.example.org/v1/auth/oidc/callback', '/home', h(inv)) \$\$;
   CREATE FUNCTION claims(sub text, email text, verified boolean DEFAULT true, tid text DEFAULT NULL)
     RETURNS jsonb LANGUAGE sql AS
     \$\$ SELECT jsonb_strip_nulls(jsonb_build_object('iss', '$ISS', 'sub', sub, 'email', email,
                                                     'email_verified', verified, 'name', 'N ' || sub,
                                                     'tid', tid)) \$\$;
   CREATE FUNCTION signin(s text, p text, c jsonb, inv text DEFAULT NULL) RETURNS json LANGUAGE plpgsql AS
     \$\$ BEGIN PERFORM begin_(s, p, 'browser', inv); PERFORM oidc_login_take(h(s), h('browser'));
              RETURN oidc_login_finish(h(s), c); END \$\$;" >/dev/null

run "admin" "SELECT put('admin', admin_user_add('admin@x.org', 'Admin', '{admin}', NULL)::text), admin_token_add('admin@x.org', tk('tok-admin'))"
run "organisation" "SELECT put('org', api_org_create(tk('tok-admin'), '{\"name\":\"Lincoln District\"}')->>'id')"
err "provider: unknown organisation" AC422 unknown_organisation "SELECT api_oidc_provider_create(tk('tok-admin'), '{\"name\":\"X\",\"issuer\":\"https://x.example\",\"client_id\":\"c\",\"org\":\"Nowhere\"}')"
run "provider" "SELECT put('p', api_oidc_provider_create(tk('tok-admin'), '{\"name\":\"IdP\",\"issuer\":\"$ISS\",\"client_id\":\"accord\",\"client_secret\":\"s3cret\",\"allowed_domains\":[\"district.example\"],\"default_roles\":[\"assessor\"],\"allow_signup\":true,\"org\":\"lincoln  district\"}')->>'id')"
check "secret stored, never answered" "SELECT client_secret = 's3cret' AND api_oidc_provider_get(tk('tok-admin'), g('p'))::text NOT LIKE '%s3cret%' FROM oidc_providers WHERE id = g('p')"

# --- the state machine ----------------------------------------------------------------
check "begin answers issuer and client" "SELECT begin_('s1', 'p')::jsonb = jsonb_build_object('issuer', '$ISS', 'client_id', 'accord')"
err "begin: unknown provider" AC404 not_found "SELECT oidc_login_begin(gen_random_uuid(), h('x'), h('b'), repeat('n', 43), repeat('v', 43), 'u', '/', NULL)"
err "take: other browser" AC400 browser_mismatch "SELECT oidc_login_take(h('s1'), h('other'))"
err "take: no browser cookie" AC400 browser_mismatch "SELECT oidc_login_take(h('s1'), NULL)"
check "take: the secret and verifier go to the server" "SELECT j->>'client_secret' = 's3cret' AND j->>'code_verifier' = repeat('v', 43) AND j->>'nonce' = repeat('n', 43) || 's1' FROM (SELECT oidc_login_take(h('s1'), h('browser'))::jsonb j) x"
err "take: single use" AC400 state_used "SELECT oidc_login_take(h('s1'), h('browser'))"
err "take: unknown state" AC400 invalid_state "SELECT oidc_login_take(h('nope'), h('browser'))"
run "s2 begun" "SELECT begin_('s2', 'p')"
run "s2 ages 11 minutes" "UPDATE oidc_logins SET created_at = now() - interval '11 minutes', expires_at = now() - interval '1 minute' WHERE state_hash = h('s2')"
err "take: expired" AC400 login_expired "SELECT oidc_login_take(h('s2'), h('browser'))"
err "finish before take" AC400 invalid_state "SELECT oidc_login_finish(h('s2'), claims('x', 'x@district.example'))"
check "expired sign-ins are swept an hour later" "SELECT (SELECT count(*) FROM oidc_logins WHERE state_hash = h('s2')) = 1"
run "s2 ages 2 hours" "UPDATE oidc_logins SET expires_at = now() - interval '2 hours' WHERE state_hash = h('s2')"
run "another begin sweeps" "SELECT begin_('s3', 'p')"
check "swept" "SELECT NOT EXISTS (SELECT 1 FROM oidc_logins WHERE state_hash = h('s2'))"
run "disable provider" "SELECT api_oidc_provider_update(tk('tok-admin'), g('p'), '{\"enabled\":false}')"
err "take: provider disabled meanwhile" AC400 invalid_state "SELECT oidc_login_take(h('s3'), h('browser'))"
err "begin: provider disabled" AC404 not_found "SELECT begin_('s4', 'p')"
run "enable provider" "SELECT api_oidc_provider_update(tk('tok-admin'), g('p'), '{\"enabled\":true}')"
run "10000 sign-ins in flight" "INSERT INTO oidc_logins (state_hash, provider_id, browser_hash, nonce, code_verifier, redirect_uri, return_to, expires_at)
     SELECT h('flood' || i), g('p'), h('b'), repeat('n', 43), repeat('v', 43), 'u', '/', now() + interval '10 minutes' FROM generate_series(1, 10000) i"

out=$(q "SELECT begin_('s5', 'p')")
if grep -q "ERROR:  53300:" <<<"$out"; then ok; else ko "begin: flood refused with 53300" "$out"; fi
run "flood gone" "DELETE FROM oidc_logins WHERE state_hash IN (SELECT h('flood' || i) FROM generate_series(1, 10000) i)"

# --- who gets in ------------------------------------------------------------------------
check "sign-up: new person of an allowed domain" "SELECT put('u1', j->>'user_id') IS NOT NULL AND j->>'how' = 'signup' AND j->>'return_to' = '/home'
    FROM (SELECT signin('a1', 'p', claims('sub-1', 'Ana@District.example'))::jsonb j) x"
check "with the default roles, the provider's name and organisation" "SELECT roles = '{assessor}' AND name = 'N sub-1' AND email = 'ana@district.example' AND org_id = g('org') FROM users WHERE id = g('u1')"
check "identity linked" "SELECT user_id = g('u1') FROM user_identities WHERE issuer = '$ISS' AND subject = 'sub-1'"
check "again: matched by (issuer, subject), even with a new email" "SELECT j->>'user_id' = g('u1')::text AND j->>'how' = 'identity' FROM (SELECT signin('a2', 'p', claims('sub-1', 'ana.new@elsewhere.example', false))::jsonb j) x"
err "finish twice" AC400 invalid_state "SELECT oidc_login_finish(h('a2'), claims('sub-1', 'ana@district.example'))"
err "another domain" AC403 not_invited "SELECT signin('a3', 'p', claims('sub-2', 'bo@elsewhere.example'))"
err "unverified email" AC403 email_not_verified "SELECT signin('a4', 'p', claims('sub-3', 'cy@district.example', false))"
err "no email" AC403 email_not_verified "SELECT signin('a5', 'p', claims('sub-4', NULL))"
err "claims of another issuer" AC400 invalid_token "SELECT signin('a6', 'p', jsonb_set(claims('sub-5', 'd@district.example'), '{iss}', '\"https://evil.example\"'))"
check "no user for the refused" "SELECT NOT EXISTS (SELECT 1 FROM user_identities WHERE subject IN ('sub-2','sub-3','sub-4','sub-5'))"
run "an existing user" "SELECT put('u2', admin_user_add('Dee@district.example', 'Dee', '{lead}', NULL)::text)"
check "existing user linked by verified email in an allowed domain" "SELECT j->>'user_id' = g('u2')::text AND j->>'how' = 'email' FROM (SELECT signin('a7', 'p', claims('sub-6', 'dee@DISTRICT.example'))::jsonb j) x"
check "keeps their roles" "SELECT roles = '{lead}' FROM users WHERE id = g('u2')"
err "a second account at the provider for a linked person" AC403 identity_conflict "SELECT signin('a8', 'p', claims('sub-7', 'dee@district.example'))"
run "signup closed" "SELECT api_oidc_provider_update(tk('tok-admin'), g('p'), '{\"allow_signup\":false}')"
err "signup closed: nobody new" AC403 not_invited "SELECT signin('a9', 'p', claims('sub-8', 'eve@district.example'))"
run "tenants" "SELECT api_oidc_provider_update(tk('tok-admin'), g('p'), '{\"tenant_ids\":[\"t-1\"],\"allowed_domains\":[],\"allow_signup\":true}')"
err "tenant gate: known person of another tenant" AC403 tenant_not_allowed "SELECT signin('b1', 'p', claims('sub-1', 'ana@district.example', true, 't-2'))"
check "tenant: sign-up without email_verified (Entra ID sends none)" "SELECT j->>'how' = 'signup' FROM (SELECT signin('b0', 'p', claims('sub-14', 'ian@anywhere.example', false, 't-1'))::jsonb j) x"
err "tenant: no email, no account" AC403 email_not_verified "SELECT signin('b00', 'p', claims('sub-15', NULL, false, 't-1'))"
check "tenant: sign-up from any domain" "SELECT j->>'how' = 'signup' FROM (SELECT signin('b2', 'p', claims('sub-9', 'fay@anywhere.example', true, 't-1'))::jsonb j) x"
err "tenant: an existing email outside allowed_domains is not taken over" AC403 email_taken "SELECT signin('b3', 'p', claims('sub-10', 'admin@x.org', true, 't-1'))"

# --- invitations -------------------------------------------------------------------------
run "tenant gate off" "SELECT api_oidc_provider_update(tk('tok-admin'), g('p'), '{\"tenant_ids\":[],\"allowed_domains\":[\"district.example\"],\"allow_signup\":false}')"
run "invite gus" "SELECT put('i1', admin_invitation_add('gus@home.example', 'Gus', '{expert}', NULL, h('inv-1'))::text)"
check "invitation by verified email, any domain" "SELECT j->>'how' = 'invitation' AND put('u3', j->>'user_id') IS NOT NULL FROM (SELECT signin('c1', 'p', claims('sub-11', 'GUS@home.example'))::jsonb j) x"
check "the account is the invitation's" "SELECT roles = '{expert}' AND name = 'Gus' FROM users WHERE id = g('u3')"
check "the invitation is used" "SELECT accepted_at IS NOT NULL AND user_id = g('u3') FROM invitations WHERE id = g('i1')"
run "invite hal" "SELECT admin_invitation_add('hal@home.example', 'Hal', '{earner}', NULL, h('inv-2'))"
err "an unverified email does not take an invitation" AC403 email_not_verified "SELECT signin('c2', 'p', claims('sub-12', 'hal@home.example', false))"
err "begin: a dead invitation link is said at once" AC404 invitation_unknown "SELECT begin_('c3', 'p', 'browser', 'inv-nope')"
check "from the invitation link: taken whatever the provider's email" "SELECT j->>'how' = 'invitation_link' AND put('u4', j->>'user_id') IS NOT NULL
    FROM (SELECT signin('c4', 'p', claims('sub-13', 'hal.work@elsewhere.example', false), 'inv-2')::jsonb j) x"
check "the account is Hal's, linked to the provider's subject" "SELECT u.name = 'Hal' AND i.subject = 'sub-13' FROM users u JOIN user_identities i ON i.user_id = u.id WHERE u.id = g('u4')"
err "the link is used now" AC404 invitation_used "SELECT begin_('c5', 'p', 'browser', 'inv-2')"
run "disable gus" "UPDATE users SET disabled_at = now() WHERE id = g('u3')"
err "a disabled user is refused" AC403 user_disabled "SELECT signin('c6', 'p', claims('sub-11', 'gus@home.example'))"

# --- administration ------------------------------------------------------------------------
err "admin only" AC401 unauthorized "SELECT api_oidc_provider_list(NULL)"
check "audit names fields, never the secret" "SELECT bool_and(detail::text NOT LIKE '%s3cret%') AND count(*) >= 5 FROM audit_log WHERE object_type = 'oidc_provider'"
run "delete" "SELECT api_oidc_provider_delete(tk('tok-admin'), g('p'))"
check "identities stay" "SELECT count(*) >= 3 FROM user_identities WHERE issuer = '$ISS'"
check "sign-ins in flight go" "SELECT NOT EXISTS (SELECT 1 FROM oidc_logins)"

echo "$suite: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
