#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/sql/calibration.sh - SQL-level tests of calibration (issue 4):
# settings, review policy, anchors, qualification sessions, qualification,
# validity items and the rolling window, double scoring and adjudication,
# the reliability pairs / routing update, and the reports.
#
#   tests/sql/calibration.sh            start a cluster, test, remove it
#   DATABASE_URL=... tests/sql/calibration.sh   use an existing EMPTY database
#
# Prints "sqlcal: N passed, N failed" last; exits non-zero on any failure.
suite=sqlcal
. "$(dirname "$0")/lib.sh"

# --- migrations and scaffolding ------------------------------------------------
apply_migrations
create_scaffolding
q "-- scores as json: levels for c1..c4
   CREATE FUNCTION S(a int, b int, c int, d int, cm text DEFAULT 'comment') RETURNS jsonb LANGUAGE sql AS
     \$\$ SELECT jsonb_build_array(jsonb_build_object('criterion','c1','level',a,cm,'x'),
            jsonb_build_object('criterion','c2','level',b), jsonb_build_object('criterion','c3','level',c),
            jsonb_build_object('criterion','c4','level',d)) \$\$;
   CREATE FUNCTION body(sc jsonb) RETURNS jsonb LANGUAGE sql AS
     \$\$ SELECT jsonb_build_object('scores', sc, 'feedback', 'fb') \$\$;" >/dev/null

H=$(printf '%064d' 0)
q "DO \$\$ DECLARE u text; BEGIN
     PERFORM admin_user_add('admin@x.org', 'Admin', '{admin}', NULL);
     FOREACH u IN ARRAY ARRAY['lead:lead','peer1:assessor','peer2:assessor','expert1:expert','expert2:expert','earner1:earner','earner2:earner','earner3:earner','earner4:earner'] LOOP
       PERFORM put(split_part(u, ':', 1), admin_user_add(split_part(u, ':', 1) || '@x.org', 'Name of ' || split_part(u, ':', 1),
                   ARRAY[split_part(u, ':', 2)], 'Org ' || split_part(u, ':', 1))::text);
       PERFORM admin_token_add(split_part(u, ':', 1) || '@x.org', tk('tok-' || split_part(u, ':', 1)));
     END LOOP; END \$\$" >/dev/null
RUBRIC='{"title":"Cal","criteria":[
  {"key":"c1","title":"C1","levels":[{"value":1,"label":"a"},{"value":2,"label":"b"},{"value":3,"label":"c"},{"value":4,"label":"d"}]},
  {"key":"c2","title":"C2","levels":[{"value":1,"label":"a"},{"value":2,"label":"b"},{"value":3,"label":"c"},{"value":4,"label":"d"}]},
  {"key":"c3","title":"C3","levels":[{"value":1,"label":"a"},{"value":2,"label":"b"},{"value":3,"label":"c"},{"value":4,"label":"d"}]},
  {"key":"c4","title":"C4","levels":[{"value":1,"label":"a"},{"value":2,"label":"b"},{"value":3,"label":"c"},{"value":4,"label":"d"}]}]}'
run "rubric" "SELECT put('rubric', api_rubric_create(tk('tok-lead'), '$RUBRIC')->>'id')"

# --- settings ------------------------------------------------------------------
check "calibration defaults" "SELECT j = jsonb_build_object('rubric_id', g('rubric'), 'exact_min', 0.70, 'adjacent_min', 0.95,
    'verdict_min', 0.80, 'set_size', 5, 'window', 20, 'min_items', 8, 'verdict_level', null,
    'max_failed_sessions', 3)
    FROM (SELECT api_rubric_calibration_get(tk('tok-peer1'), g('rubric'))::jsonb j) x"
check "middle level is 3 on 1-4" "SELECT _verdict_level(r) = 3 FROM rubrics r WHERE id = g('rubric')"
check "calibration put partial" "SELECT j->>'set_size' = '4' AND j->>'exact_min' = '0.70' AND j->>'verdict_level' = '3'
    FROM (SELECT api_rubric_calibration_put(tk('tok-lead'), g('rubric'), '{\"set_size\":4,\"verdict_level\":3}')::jsonb j) x"
err "calibration: share > 1" AC422 invalid_calibration "SELECT api_rubric_calibration_put(tk('tok-lead'), g('rubric'), '{\"exact_min\":1.2}')"
err "calibration: set_size 51" AC422 invalid_calibration "SELECT api_rubric_calibration_put(tk('tok-lead'), g('rubric'), '{\"set_size\":51}')"
err "calibration: window 0" AC422 invalid_calibration "SELECT api_rubric_calibration_put(tk('tok-lead'), g('rubric'), '{\"window\":0}')"
err "calibration: verdict level not a level" AC422 invalid_calibration "SELECT api_rubric_calibration_put(tk('tok-lead'), g('rubric'), '{\"verdict_level\":7}')"
err "calibration: type" AC400 bad_request "SELECT api_rubric_calibration_put(tk('tok-lead'), g('rubric'), '{\"min_items\":\"8\"}')"
err "calibration: unknown key" AC400 bad_request "SELECT api_rubric_calibration_put(tk('tok-lead'), g('rubric'), '{\"windw\":8}')"
err "calibration: not lead" AC403 forbidden "SELECT api_rubric_calibration_put(tk('tok-peer1'), g('rubric'), '{}')"
err "calibration: unknown rubric" AC404 not_found "SELECT api_rubric_calibration_get(tk('tok-lead'), gen_random_uuid())"
check "audit: calibration update" "SELECT count(*) = 1 FROM audit_log WHERE action = 'rubric.calibration_update'"

# --- credentials and policy ----------------------------------------------------------
cred() { run "credential $1" "SELECT put('$1', api_credential_create(tk('tok-lead'), jsonb_build_object('title','$1','stakes','$2',
    'rubric_id',g('rubric'),'evidence','[]'::jsonb,'pass_rule','{\"min_level_each\":3}'::jsonb,'review_policy','$3'::jsonb))->>'id')"; }
cred low low '{"validity_rate":0,"second_score_rate":0}'
cred high high '{"validity_rate":0}'
check "policy defaults (high)" "SELECT j->'review_policy' = '{\"validity_rate\":0,\"second_score_rate\":0.25,\"second_score_floor\":0.10,\"reliability_threshold\":0.60,\"min_pairs\":30,\"peer_wait_hours\":72,\"turnaround_hours\":null}'
    FROM (SELECT api_credential_get(tk('tok-peer1'), g('high'))::jsonb j) x"
check "policy put partial" "SELECT j->>'min_pairs' = '4' AND j->>'second_score_rate' = '0'
    FROM (SELECT api_credential_policy_put(tk('tok-lead'), g('low'), '{\"min_pairs\":4}')::jsonb j) x"
err "policy: rate > 1" AC422 invalid_policy "SELECT api_credential_policy_put(tk('tok-lead'), g('low'), '{\"validity_rate\":1.5}')"
err "policy: min_pairs 0" AC422 invalid_policy "SELECT api_credential_policy_put(tk('tok-lead'), g('low'), '{\"min_pairs\":0}')"
err "policy: type" AC400 bad_request "SELECT api_credential_policy_put(tk('tok-lead'), g('low'), '{\"min_pairs\":2.5}')"
err "policy: not object at create" AC400 bad_request "SELECT api_credential_create(tk('tok-lead'), jsonb_build_object('title','t','stakes','low',
    'rubric_id',g('rubric'),'evidence','[]'::jsonb,'pass_rule','{\"min_level_each\":3}'::jsonb,'review_policy','\"often\"'::jsonb))"
err "policy: unknown credential" AC404 not_found "SELECT api_credential_policy_put(tk('tok-lead'), gen_random_uuid(), '{}')"
run "grants" "SELECT api_assessor_grant(tk('tok-lead'), g('low'), jsonb_build_object('user_id', g('peer1'), 'pool', 'peer', 'waive_award', true)),
    api_assessor_grant(tk('tok-lead'), g('low'), jsonb_build_object('user_id', g('peer2'), 'pool', 'peer', 'waive_award', true)),
    api_assessor_grant(tk('tok-lead'), g('low'), jsonb_build_object('user_id', g('expert1'), 'pool', 'expert')),
    api_assessor_grant(tk('tok-lead'), g('low'), jsonb_build_object('user_id', g('expert2'), 'pool', 'expert')),
    api_assessor_grant(tk('tok-lead'), g('high'), jsonb_build_object('user_id', g('expert1'), 'pool', 'expert')),
    api_assessor_grant(tk('tok-lead'), g('high'), jsonb_build_object('user_id', g('expert2'), 'pool', 'expert'))"

# --- anchors ----------------------------------------------------------------------------
run "lead uploads anchor evidence" "SELECT put('la' || i, api_artifact_upload(tk('tok-lead'), 'video', 'video/mp4', 'a.mp4', 10, '$H')->>'id') FROM generate_series(1, 5) i"
M="jsonb_build_object('scores', jsonb_build_array(jsonb_build_object('criterion','c1','level',3,'rationale','r1'),
    jsonb_build_object('criterion','c2','level',3,'rationale','r2'), jsonb_build_object('criterion','c3','level',2),
    jsonb_build_object('criterion','c4','level',4)), 'feedback', 'master fb')"
for i in 1 2 3 4 5; do
    run "anchor $i" "SELECT put('an$i', api_anchor_create(tk('tok-lead'), jsonb_build_object('rubric_id', g('rubric'), 'artifact_ids', jsonb_build_array(g('la$i')), 'master', $M))->>'id')"
done
check "anchor get" "SELECT j->'master'->'scores'->0->>'rationale' = 'r1' AND j->'master'->>'feedback' = 'master fb' AND j->'artifact_ids'->>0 = g('la1')::text
    FROM (SELECT api_anchor_get(tk('tok-lead'), g('an1'))::jsonb j) x"
err "anchor list: rubric_id required" AC400 bad_request "SELECT api_anchor_list(tk('tok-lead'), '{}')"
check "anchor list" "SELECT json_array_length(api_anchor_list(tk('tok-lead'), jsonb_build_object('rubric_id', g('rubric')))->'anchors') = 5"
err "anchor list: bad query" AC400 invalid_uuid "SELECT api_anchor_list(tk('tok-lead'), '{\"rubric_id\":\"x\"}')"
err "anchor list: undashed uuid" AC400 invalid_uuid "SELECT api_anchor_list(tk('tok-lead'), jsonb_build_object('rubric_id', replace(g('rubric')::text, '-', '')))"
err "anchor list: unknown param" AC400 bad_request "SELECT api_anchor_list(tk('tok-lead'), '{\"rubric\":\"x\"}')"
err "anchor: invalid master" AC422 invalid_scores "SELECT api_anchor_create(tk('tok-lead'), jsonb_build_object('rubric_id', g('rubric'), 'artifact_ids', jsonb_build_array(g('la1')),
    'master', jsonb_build_object('scores', jsonb_build_array(jsonb_build_object('criterion','c1','level',9)), 'feedback', '')))"
err "anchor: not lead" AC403 forbidden "SELECT api_anchor_get(tk('tok-peer1'), g('an1'))"
err "anchor: unknown artifact" AC422 unknown_artifact "SELECT api_anchor_create(tk('tok-lead'), jsonb_build_object('rubric_id', g('rubric'), 'artifact_ids', jsonb_build_array(gen_random_uuid()), 'master', $M))"

# --- qualification ---------------------------------------------------------------------
run "earner submits" "SELECT put('s1', api_submission_create(tk('tok-earner1'), jsonb_build_object('credential_id', g('low'),
    'artifact_ids', jsonb_build_array(api_artifact_upload(tk('tok-earner1'), 'plan', 'application/pdf', NULL, 1, '$H')->>'id')))->>'id')"
check "claim needs qualification" "SELECT api_review_claim(tk('tok-peer1'), '{}', 7200) IS NULL"
err "artifact of an anchor: not readable yet" AC403 forbidden "SELECT api_artifact_get(tk('tok-peer1'), g('la1'))"
err "session: earner" AC403 forbidden "SELECT api_calibration_session_create(tk('tok-earner1'), jsonb_build_object('rubric_id', g('rubric')))"
run "session" "SELECT put('cs', api_calibration_session_create(tk('tok-peer1'), jsonb_build_object('rubric_id', g('rubric')))->>'id')"
check "session shape" "SELECT j->>'status' = 'open' AND jsonb_array_length(j->'items') = 4 AND j->'items'->0->>'scored' = 'false'
    AND jsonb_array_length(j->'items'->0->'artifacts') = 1 AND j::text NOT LIKE '%master fb%' AND j::text NOT LIKE '%r1%'
    FROM (SELECT api_calibration_session_get(tk('tok-peer1'), g('cs'))::jsonb j) x"
check "item artifacts readable by the session's assessor" "SELECT api_artifact_get(tk('tok-peer1'), (SELECT aa.artifact_id FROM calibration_items ci JOIN anchor_artifacts aa USING (anchor_id) WHERE ci.session_id = g('cs') LIMIT 1)) IS NOT NULL"
err "session get: other" AC403 forbidden "SELECT api_calibration_session_get(tk('tok-peer2'), g('cs'))"
q "SELECT put('ci' || position, id::text) FROM calibration_items WHERE session_id = g('cs')" >/dev/null
err "item score: invalid" AC422 invalid_scores "SELECT api_calibration_item_score(tk('tok-peer1'), g('cs'), g('ci1'), body(S(3,3,3,9)))"
err "item score: other's session" AC403 forbidden "SELECT api_calibration_item_score(tk('tok-peer2'), g('cs'), g('ci1'), body(S(3,3,2,4)))"
check "item 1 (exact)" "SELECT j->>'remaining' = '3' AND j->>'scored' = 'true' FROM (SELECT api_calibration_item_score(tk('tok-peer1'), g('cs'), g('ci1'), body(S(3,3,2,4)))::jsonb j) x"
err "item score twice" AC409 already_scored "SELECT api_calibration_item_score(tk('tok-peer1'), g('cs'), g('ci1'), body(S(3,3,2,4)))"
run "item 2 (exact)" "SELECT api_calibration_item_score(tk('tok-peer1'), g('cs'), g('ci2'), body(S(3,3,2,4)))"
run "item 3 (exact)" "SELECT api_calibration_item_score(tk('tok-peer1'), g('cs'), g('ci3'), body(S(3,3,2,4)))"
# item 4: c3 3 vs 2 (adjacent); verdict at level 3: master fails (c3 = 2), this passes -> 3/4 verdicts
check "last item: result" "SELECT j->>'status' = 'completed' AND (j->'result'->>'exact')::numeric = 0.9375 AND (j->'result'->>'adjacent')::numeric = 1
    AND (j->'result'->>'verdict_agreement')::numeric = 0.75 AND j->'result'->>'qualified' = 'false'
    AND j->'result'->'items'->0->'master'->'scores'->0->>'rationale' = 'r1' AND j->'result'->'thresholds'->>'verdict_min' = '0.80'
    FROM (SELECT api_calibration_item_score(tk('tok-peer1'), g('cs'), g('ci4'), body(S(3,3,3,4)))::jsonb j) x"
check "not qualified: no row" "SELECT json_array_length(api_my_qualifications(tk('tok-peer1'))->'qualifications') = 0"
# issue 7: the four anchors whose masters the result showed never qualify peer1 again
err "second session: pool exhausted (1 new anchor, set of 4)" AC422 anchor_pool_exhausted "SELECT api_calibration_session_create(tk('tok-peer1'), jsonb_build_object('rubric_id', g('rubric')))"
run "lead uploads more anchor evidence" "SELECT put('la' || i, api_artifact_upload(tk('tok-lead'), 'video', 'video/mp4', 'a.mp4', 10, '$H')->>'id') FROM generate_series(6, 10) i"
for i in 6 7 8; do
    run "anchor $i" "SELECT put('an$i', api_anchor_create(tk('tok-lead'), jsonb_build_object('rubric_id', g('rubric'), 'artifact_ids', jsonb_build_array(g('la$i')), 'master', $M))->>'id')"
done
run "second session" "SELECT put('cs2', api_calibration_session_create(tk('tok-peer1'), jsonb_build_object('rubric_id', g('rubric')))->>'id')"
check "second session: only anchors never shown, oldest first" "SELECT array_agg(anchor_id ORDER BY position) = ARRAY[g('an5'), g('an6'), g('an7'), g('an8')] FROM calibration_items WHERE session_id = g('cs2')"
q "SELECT put('d' || position, id::text) FROM calibration_items WHERE session_id = g('cs2')" >/dev/null
run "second session items" "SELECT api_calibration_item_score(tk('tok-peer1'), g('cs2'), g('d' || i), body(S(3,3,2,4))) FROM generate_series(1, 4) i"
check "qualified" "SELECT j->'qualifications'->0->>'status' = 'qualified' AND j->'qualifications'->0->'window'->>'items' = '0'
    FROM (SELECT api_my_qualifications(tk('tok-peer1'))::jsonb j) x"
check "audit: qualification" "SELECT count(*) = 1 FROM audit_log WHERE action = 'qualification.change' AND object_id = g('peer1')"
err "qualification set: reason required" AC400 bad_request "SELECT api_qualification_set(tk('tok-lead'), g('peer2'), jsonb_build_object('rubric_id', g('rubric'), 'status', 'qualified'))"
err "qualification set: blank reason" AC400 bad_request "SELECT api_qualification_set(tk('tok-lead'), g('peer2'), jsonb_build_object('rubric_id', g('rubric'), 'status', 'qualified', 'reason', '  '))"
err "qualification set: bad status" AC400 bad_request "SELECT api_qualification_set(tk('tok-lead'), g('peer2'), jsonb_build_object('rubric_id', g('rubric'), 'status', 'great', 'reason', 'x'))"
err "qualification set: earner" AC422 invalid_qualification "SELECT api_qualification_set(tk('tok-lead'), g('earner1'), jsonb_build_object('rubric_id', g('rubric'), 'status', 'qualified', 'reason', 'x'))"
err "qualification set: unknown user" AC404 not_found "SELECT api_qualification_set(tk('tok-lead'), gen_random_uuid(), jsonb_build_object('rubric_id', g('rubric'), 'status', 'qualified', 'reason', 'x'))"
err "qualification set: not lead" AC403 forbidden "SELECT api_qualification_set(tk('tok-peer1'), g('peer2'), jsonb_build_object('rubric_id', g('rubric'), 'status', 'qualified', 'reason', 'x'))"
for u in peer2 expert1 expert2; do
    check "qualify $u by hand" "SELECT api_qualification_set(tk('tok-lead'), g('$u'), jsonb_build_object('rubric_id', g('rubric'), 'status', 'qualified', 'reason', 'workshop'))->>'status' = 'qualified'"
done
check "audit row has the reason" "SELECT detail->>'reason' = 'workshop' FROM audit_log WHERE action = 'qualification.change' AND object_id = g('expert2')"

# --- validity items and the window ----------------------------------------------------
# peer1 saw every qualification anchor's masters: validity items come from these two
for i in 9 10; do
    run "validity anchor $i" "SELECT put('an$i', api_anchor_create(tk('tok-lead'), jsonb_build_object('rubric_id', g('rubric'), 'purpose', 'validity', 'artifact_ids', jsonb_build_array(g('la$i')), 'master', $M))->>'id')"
done
run "validity always; window of 2" "SELECT api_credential_policy_put(tk('tok-lead'), g('low'), '{\"validity_rate\":1}'),
    api_rubric_calibration_put(tk('tok-lead'), g('rubric'), '{\"min_items\":2,\"window\":2}')"
run "claim: validity item" "SELECT put('v1', api_review_claim(tk('tok-peer1'), '{}', 7200)->>'id')"
check "validity claim: live shape" "SELECT j ?& array['id','status','lease_expires_at','credential','submission','rubric'] AND (SELECT count(*) FROM jsonb_object_keys(j)) = 6
    AND (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(j->'submission') k) = '{artifacts,attempt,id,previous_result}'
    AND j->'submission'->>'attempt' = '1' AND j->'submission'->'previous_result' = 'null' AND j->'credential'->>'id' = g('low')::text
    AND jsonb_array_length(j->'submission'->'artifacts') = 1
    FROM (SELECT api_review_get(tk('tok-peer1'), g('v1'))::jsonb j) x"
check "validity submission hidden from lists" "SELECT NOT EXISTS (SELECT 1 FROM json_array_elements(api_submission_list(tk('tok-lead'))->'submissions') e WHERE e->>'status' = 'validity')"
err "validity submission hidden from get" AC404 not_found "SELECT api_submission_get(tk('tok-earner1'), (SELECT submission_id FROM reviews WHERE id = g('v1')))"
check "lead sees routing" "SELECT api_review_get(tk('tok-lead'), g('v1'))->'routing'->>'rule' = 'validity_item'"
check "holder does not see routing" "SELECT NOT (api_review_get(tk('tok-peer1'), g('v1'))::jsonb ? 'routing')"
check "validity score: normal shape" "SELECT j->>'verdict' = 'resubmit' AND j->'award_id' = 'null' AND j->>'status' = 'submitted' AND NOT j ? '_reliability_due'
    FROM (SELECT api_review_score(tk('tok-peer1'), g('v1'), body(S(1,1,1,1)))::jsonb j) x"
# (1,1,1,1 and the master 3,3,2,4 both fail at verdict level 3: verdicts agree)
check "window row" "SELECT n = 4 AND n_exact = 0 AND n_adjacent = 1 AND diff_sum = -8 AND source = 'validity' AND verdict_agree FROM calibration_window WHERE review_id = g('v1')"
check "still qualified after 1 item" "SELECT status = 'qualified' FROM qualifications WHERE user_id = g('peer1')"
run "claim: second validity item (another anchor)" "SELECT put('v2', api_review_claim(tk('tok-peer1'), '{}', 7200)->>'id')"
check "another anchor" "SELECT count(DISTINCT s.anchor_id) = 2 FROM reviews r JOIN submissions s ON s.id = r.submission_id WHERE r.id IN (g('v1'), g('v2'))"
run "score it badly" "SELECT api_review_score(tk('tok-peer1'), g('v2'), body(S(1,1,1,1)))"
check "needs recalibration with the numbers" "SELECT status = 'needs_recalibration' AND reason = 'exact 0.00 < 0.70, adjacent 0.25 < 0.95 over the last 2 items'
    FROM qualifications WHERE user_id = g('peer1')"
check "no live claims now" "SELECT api_review_claim(tk('tok-peer1'), '{}', 7200) IS NULL"
check "my qualifications: window" "SELECT j->'qualifications'->0->'window'->>'items' = '2' AND j->'qualifications'->0->>'status' = 'needs_recalibration'
    FROM (SELECT api_my_qualifications(tk('tok-peer1'))::jsonb j) x"
run "validity item for peer2" "SELECT put('v3', api_review_claim(tk('tok-peer2'), '{}', 7200)->>'id')"
run "released" "SELECT api_review_release(tk('tok-peer2'), g('v3'))"
check "released validity item disappears" "SELECT s.status = 'validity' AND s.current_review_id IS NULL FROM reviews r JOIN submissions s ON s.id = r.submission_id WHERE r.id = g('v3')"
run "policy: no validity, always second scores" "SELECT api_credential_policy_put(tk('tok-lead'), g('low'), '{\"validity_rate\":0,\"second_score_rate\":1}'),
    api_rubric_calibration_put(tk('tok-lead'), g('rubric'), '{\"min_items\":8,\"window\":20}')"

# --- double scoring and adjudication ----------------------------------------------------
check "expert does not take low-stakes first scores" "SELECT api_review_claim(tk('tok-expert1'), jsonb_build_object('credential_id', g('low')), 7200) IS NULL"
run "peer2 first score" "SELECT put('r1', api_review_claim(tk('tok-peer2'), '{}', 7200)->>'id')"
check "first score: routing peer" "SELECT api_review_get(tk('tok-lead'), g('r1'))->'routing'->>'rule' = 'peer'"
check "first score" "SELECT api_review_score(tk('tok-peer2'), g('r1'), body(S(4,4,4,4)))->>'verdict' = 'pass'"
check "earner: in_review, no result" "SELECT j->>'status' = 'in_review' AND j->'result' = 'null' AND j->'award_id' = 'null'
    FROM (SELECT api_submission_get(tk('tok-earner1'), g('s1'))::jsonb j) x"
check "decision recorded" "SELECT j->'routing'->'decision'->>'rule' = 'second_score_random' AND (j->'routing'->'decision'->>'share')::numeric = 1
    FROM (SELECT api_review_get(tk('tok-lead'), g('r1'))::jsonb j) x"
check "peer1 (not qualified) cannot, peer2 not again" "SELECT api_review_claim(tk('tok-peer2'), '{}', 7200) IS NULL"
run "expert1 second score" "SELECT put('r2', api_review_claim(tk('tok-expert1'), '{}', 7200)->>'id')"
check "second: blind, routing" "SELECT j::text NOT LIKE '%' || g('peer2') || '%' AND NOT j ? 'adjudication' AND j->'submission'->'previous_result' = 'null'
    FROM (SELECT api_review_get(tk('tok-expert1'), g('r2'))::jsonb j) x"
check "second: routing for the lead" "SELECT api_review_get(tk('tok-lead'), g('r2'))->'routing'->>'rule' = 'second_score_random'"
check "second score disagrees: reliability due" "SELECT j->>'_reliability_due' = g('low')::text
    FROM (SELECT api_review_score(tk('tok-expert1'), g('r2'), body(S(2,4,4,4)))::jsonb j) x"
check "adjudication stage" "SELECT stage = 'adjudication' AND status = 'in_review' AND routing->>'rule' = 'disagreement' AND routing->'criteria' = '[\"c1\"]'
    FROM submissions WHERE id = g('s1')"
check "peer window row (double)" "SELECT source = 'double' AND n = 4 AND n_exact = 3 AND diff_sum = 2 FROM calibration_window WHERE user_id = g('peer2')"
check "expert1 cannot adjudicate what he scored" "SELECT api_review_claim(tk('tok-expert1'), '{}', 7200) IS NULL"
run "lead adjudicates" "SELECT put('r3', api_review_claim(tk('tok-lead'), '{}', 7200)->>'id')"
check "adjudication: two score sets, no identities" "SELECT jsonb_array_length(j->'adjudication'->'score_sets') = 2
    AND j->'adjudication'->'score_sets'->0->'scores'->0->>'level' = '4' AND j->'adjudication'->'score_sets'->1->'scores'->0->>'level' = '2'
    AND j::text NOT LIKE '%' || g('peer2') || '%' AND j::text NOT LIKE '%' || g('expert1') || '%'
    FROM (SELECT api_review_get(tk('tok-lead'), g('r3'))::jsonb j) x"
check "adjudicated: final, award" "SELECT j->>'verdict' = 'pass' AND j->>'award_id' IS NOT NULL FROM (SELECT api_review_score(tk('tok-lead'), g('r3'), body(S(3,4,4,4)))::jsonb j) x"
check "earner sees the adjudicated result" "SELECT j->>'status' = 'passed' AND j->'result'->'scores'->0->>'level' = '3'
    FROM (SELECT api_submission_get(tk('tok-earner1'), g('s1'))::jsonb j) x"

# agreement: low stakes -> the expert's scores stand
run "earner2 submits" "SELECT put('s2', api_submission_create(tk('tok-earner2'), jsonb_build_object('credential_id', g('low'),
    'artifact_ids', jsonb_build_array(api_artifact_upload(tk('tok-earner2'), 'plan', 'application/pdf', NULL, 1, '$H')->>'id')))->>'id')"
run "peer2 scores s2" "SELECT api_review_score(tk('tok-peer2'), (api_review_claim(tk('tok-peer2'), '{}', 7200)->>'id')::uuid, body(S(3,3,3,4)))"
run "expert2 scores s2" "SELECT put('r5', api_review_claim(tk('tok-expert2'), '{}', 7200)->>'id')"
check "agreement: award" "SELECT (api_review_score(tk('tok-expert2'), g('r5'), body(S(3,3,3,3)))->>'award_id') IS NOT NULL"
check "agreement: final with the expert's scores" "SELECT status = 'passed' AND decided_review_id = g('r5') FROM submissions WHERE id = g('s2')"
# high stakes: the first's scores stand
run "earner3 submits high" "SELECT put('s3', api_submission_create(tk('tok-earner3'), jsonb_build_object('credential_id', g('high'),
    'artifact_ids', jsonb_build_array(api_artifact_upload(tk('tok-earner3'), 'plan', 'application/pdf', NULL, 1, '$H')->>'id')))->>'id')"
run "policy high: always second" "SELECT api_credential_policy_put(tk('tok-lead'), g('high'), '{\"second_score_rate\":1}')"
run "expert1 first on high" "SELECT put('r6', api_review_claim(tk('tok-expert1'), jsonb_build_object('credential_id', g('high')), 7200)->>'id')"
check "high: routing" "SELECT api_review_get(tk('tok-lead'), g('r6'))->'routing'->>'rule' = 'high_stakes_expert'"
run "expert1 scores (resubmit)" "SELECT api_review_score(tk('tok-expert1'), g('r6'), body(S(2,2,2,2)))"
run "expert2 second on high" "SELECT put('r7', api_review_claim(tk('tok-expert2'), jsonb_build_object('credential_id', g('high')), 7200)->>'id')"
check "high: no reliability due" "SELECT (api_review_score(tk('tok-expert2'), g('r7'), body(S(1,2,2,2)))->>'_reliability_due') IS NULL"
check "high: first's scores stand" "SELECT status = 'returned' AND decided_review_id = g('r6') FROM submissions WHERE id = g('s3')"

# --- reliability and routing ------------------------------------------------------------
check "reliability pairs" "SELECT j->'paused' = 'false' AND j->'levels' = '[1,2,3,4]' AND jsonb_array_length(j->'rows') = 16
    AND (SELECT count(*) FROM jsonb_array_elements(j->'rows') e WHERE e->>1 = 'peer') = 8
    FROM (SELECT reliability_pairs(g('low'))::jsonb j) x"
check "routing_update: undefined keeps things" "SELECT j->>'peer_review' = 'active' AND (j->>'second_score_share')::numeric = 1
    FROM (SELECT routing_update(g('low'), 2, NULL, NULL, NULL)::jsonb j) x"
run "min_pairs 2" "SELECT api_credential_policy_put(tk('tok-lead'), g('low'), '{\"min_pairs\":2}')"
check "routing_update: pause (pairs counted in SQL)" "SELECT j->>'peer_review' = 'paused' AND (j->>'second_score_share')::numeric = 1 AND j->>'reason' LIKE '%kappa 0.30 (95% CI 0.10–0.50) over 2 peer/expert pairs%'
    FROM (SELECT routing_update(g('low'), 40, 0.3, 0.1, 0.5)::jsonb j) x"
check "peers need recalibration, with the numbers" "SELECT status = 'needs_recalibration' AND reason LIKE '%kappa 0.30 (95% CI 0.10–0.50) over 2 pairs is under 0.60'
    FROM qualifications WHERE user_id = g('peer2')"
check "audit: pause" "SELECT count(*) = 1 FROM audit_log WHERE action = 'routing.pause' AND object_id = g('low')"
check "paused: no pairs since" "SELECT (reliability_pairs(g('low'))->>'paused') = 'true' AND json_array_length(reliability_pairs(g('low'))->'rows') = 0"
run "earner4 submits" "SELECT put('s4', api_submission_create(tk('tok-earner4'), jsonb_build_object('credential_id', g('low'),
    'artifact_ids', jsonb_build_array(api_artifact_upload(tk('tok-earner4'), 'plan', 'application/pdf', NULL, 1, '$H')->>'id')))->>'id')"
check "paused: peer cannot claim" "SELECT api_review_claim(tk('tok-peer2'), '{}', 7200) IS NULL"
run "requalify peer2" "SELECT api_qualification_set(tk('tok-lead'), g('peer2'), jsonb_build_object('rubric_id', g('rubric'), 'status', 'qualified', 'reason', 'recalibrated'))"
run "requalified peer claims" "SELECT put('r8', api_review_claim(tk('tok-peer2'), '{}', 7200)->>'id')"
check "requalified: always double" "SELECT api_review_get(tk('tok-lead'), g('r8'))->'routing'->>'rule' = 'peer_requalified'"
run "low policy: no random second scores" "SELECT api_credential_policy_put(tk('tok-lead'), g('low'), '{\"second_score_rate\":0}')"
run "requalified peer scores" "SELECT api_review_score(tk('tok-peer2'), g('r8'), body(S(4,4,4,4)))"
check "double-scored anyway" "SELECT stage = 'second' AND routing->>'rule' = 'peer_paused_double' FROM submissions WHERE id = g('s4')"
run "expert1 second-scores s4" "SELECT api_review_score(tk('tok-expert1'), (api_review_claim(tk('tok-expert1'), jsonb_build_object('credential_id', g('low')), 7200)->>'id')::uuid, body(S(4,4,4,4)))"
check "one pair since the pause" "SELECT json_array_length(reliability_pairs(g('low'))->'rows') = 8"
run "min_pairs 1" "SELECT api_credential_policy_put(tk('tok-lead'), g('low'), '{\"min_pairs\":1}')"
check "routing_update: resume" "SELECT j->>'peer_review' = 'active' AND j->>'pairs' = '1' AND (j->>'second_score_share')::numeric = 0.10
    FROM (SELECT routing_update(g('low'), 40, 0.9, 0.85, 0.95)::jsonb j) x"
check "routing_update: linear share" "SELECT (routing_update(g('low'), 40, 0.8, 0.7, 0.9)->>'second_score_share')::numeric = 0.55"
check "active again: only pairs since the pause" "SELECT json_array_length(reliability_pairs(g('low'))->'rows') = 8"
check "audit: resume" "SELECT count(*) = 1 FROM audit_log WHERE action = 'routing.resume' AND object_id = g('low')"

# --- reports ------------------------------------------------------------------------------
check "agreement rows" "SELECT j->'criteria' = '[\"c1\",\"c2\",\"c3\",\"c4\"]' AND j->>'pool' = 'all' AND jsonb_array_length(j->'rows') = 4 * 7
    AND j->'rows'->0->>0 = '0' FROM (SELECT api_report_agreement_rows(tk('tok-lead'), jsonb_build_object('credential_id', g('low')))::jsonb j) x"
check "agreement rows: pool peer" "SELECT jsonb_array_length(j->'rows') = 4 * 3 FROM (SELECT api_report_agreement_rows(tk('tok-lead'), jsonb_build_object('credential_id', g('low'), 'pool', 'peer'))::jsonb j) x"
check "agreement rows: since" "SELECT jsonb_array_length(j->'rows') = 0 FROM (SELECT api_report_agreement_rows(tk('tok-lead'), jsonb_build_object('credential_id', g('low'), 'since', '2999-01-01T00:00:00Z'))::jsonb j) x"
err "agreement rows: credential required" AC400 bad_request "SELECT api_report_agreement_rows(tk('tok-lead'), '{}')"
err "agreement rows: malformed" AC400 invalid_uuid "SELECT api_report_agreement_rows(tk('tok-lead'), '{\"credential_id\":\"x\"}')"
err "agreement rows: unknown" AC404 not_found "SELECT api_report_agreement_rows(tk('tok-lead'), jsonb_build_object('credential_id', gen_random_uuid()))"
err "agreement rows: bad since" AC400 bad_request "SELECT api_report_agreement_rows(tk('tok-lead'), jsonb_build_object('credential_id', g('low'), 'since', '2024-13-45'))"
err "agreement rows: bad pool" AC400 bad_request "SELECT api_report_agreement_rows(tk('tok-lead'), jsonb_build_object('credential_id', g('low'), 'pool', 'x'))"
err "agreement rows: not lead" AC403 forbidden "SELECT api_report_agreement_rows(tk('tok-expert1'), jsonb_build_object('credential_id', g('low')))"
check "ratings csv" "SELECT split_part(j->>'csv', E'\n', 1) = 'unit,rater,score' AND array_length(string_to_array(rtrim(j->>'csv', E'\n'), E'\n'), 1) = 1 + 28
    AND split_part(j->>'csv', E'\n', 2) ~ '^[0-9a-f-]{36}:c[1-4],[0-9a-f-]{36},[1-4]$'
    FROM (SELECT api_report_ratings_csv(tk('tok-lead'), jsonb_build_object('credential_id', g('low')))::jsonb j) x"
check "routing report" "SELECT e->>'peer_review' = 'active' AND e->'queue'->>'second' = '0' AND e->>'pairs' = '1' AND e ? 'oldest_waiting_hours' AND e->>'adjudications_open' = '0'
    FROM jsonb_array_elements(api_report_routing(tk('tok-lead'))::jsonb->'credentials') e WHERE e->>'credential_id' = g('low')::text"
check "assessors report" "SELECT e->>'status' = 'needs_recalibration' AND e->'validity'->>'items' = '2' AND (e->'severity'->>'vs_master')::numeric < 0
    FROM json_array_elements(api_report_assessors(tk('tok-lead'), jsonb_build_object('rubric_id', g('rubric')))->'assessors') e WHERE e->>'user_id' = g('peer1')::text"
check "assessors report: vs experts" "SELECT (e->'severity'->>'vs_experts')::numeric = 0.25
    FROM json_array_elements(api_report_assessors(tk('tok-lead'), jsonb_build_object('rubric_id', g('rubric')))->'assessors') e WHERE e->>'user_id' = g('peer2')::text"
err "assessors report: rubric required" AC400 bad_request "SELECT api_report_assessors(tk('tok-lead'), '{}')"

# --- invariants --------------------------------------------------------------------------
check "every claim audited" "SELECT (SELECT count(*) FROM reviews) = (SELECT count(*) FROM audit_log WHERE action = 'review.claim')"
check "every score audited" "SELECT (SELECT count(*) FROM reviews WHERE status = 'submitted') = (SELECT count(*) FROM audit_log WHERE action = 'review.score')"
check "validity submissions never queued" "SELECT count(*) = 0 FROM submissions WHERE anchor_id IS NOT NULL AND status <> 'validity'"

echo "sqlcal: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
