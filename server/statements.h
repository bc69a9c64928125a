/*
 * statements.h - every SQL statement the server runs on the event loop.
 *
 * Each is a call of one SQL function from db/ (the function does the whole
 * transaction), prepared once per connection when it connects. Parameters
 * are always bound, never pasted into the text. The functions' contract is
 * in db/README.md.
 */
#ifndef ACCORD_STATEMENTS_H
#define ACCORD_STATEMENTS_H

enum stmt_id {
    STMT_PING,
    STMT_ME,
    STMT_USER_CREATE,
    STMT_TOKEN_CREATE,
    STMT_RUBRIC_CREATE,
    STMT_RUBRIC_GET,
    STMT_CREDENTIAL_CREATE,
    STMT_CREDENTIAL_LIST,
    STMT_CREDENTIAL_GET,
    STMT_ASSESSOR_GRANT,
    STMT_ARTIFACT_PRECHECK,
    STMT_ARTIFACT_UPLOAD,
    STMT_ARTIFACT_REGISTER,
    STMT_ARTIFACT_GET,
    STMT_ARTIFACT_CONTENT,
    STMT_SUBMISSION_CREATE,
    STMT_SUBMISSION_LIST,
    STMT_SUBMISSION_GET,
    STMT_SUBMISSION_RESUBMIT,
    STMT_REVIEW_CLAIM,
    STMT_REVIEW_GET,
    STMT_REVIEW_RELEASE,
    STMT_REVIEW_SCORE,
    STMT_AWARD_GET,
    STMT_UPLOAD_CREATE,
    STMT_UPLOAD_GET,
    STMT_UPLOAD_BEGIN,
    STMT_UPLOAD_ADVANCE,
    STMT_UPLOAD_FINISH,
    STMT_RUBRIC_CALIBRATION_GET,
    STMT_RUBRIC_CALIBRATION_PUT,
    STMT_CREDENTIAL_POLICY_PUT,
    STMT_ANCHOR_CREATE,
    STMT_ANCHOR_LIST,
    STMT_ANCHOR_GET,
    STMT_CALIBRATION_SESSION_CREATE,
    STMT_CALIBRATION_SESSION_GET,
    STMT_CALIBRATION_ITEM_SCORE,
    STMT_MY_QUALIFICATIONS,
    STMT_QUALIFICATION_SET,
    STMT_RELIABILITY_PAIRS,
    STMT_ROUTING_UPDATE,
    STMT_REPORT_AGREEMENT_ROWS,
    STMT_REPORT_ASSESSORS,
    STMT_REPORT_ROUTING,
    STMT_REPORT_RATINGS_CSV,
    STMT_AUTH_LOOKUP, /* authgate.h: credential -> user id, or NULL */
    STMT_COUNT
};

struct statement {
    const char *name; /* prepared statement name */
    const char *sql;
    int nparams;
};

extern const struct statement statements[STMT_COUNT];

#endif
