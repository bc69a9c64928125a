/*
 * signin.c - INTERIM until browser sessions (issue 10 item 5) land: the
 * person is identified, but no session can be made yet, so the answer says so.
 */
#include "signin.h"

void signin_session_redirect(struct request *r, const char *user_id, const char *return_to,
                             const char *method)
{
    (void)return_to;
    (void)method;
    reply_json(r, 501,
               json_pack("{s:{s:s,s:s},s:s}", "error", "code", "sessions_unavailable", "message",
                         "you were identified, but browser sessions are not available yet",
                         "user_id", user_id));
}
