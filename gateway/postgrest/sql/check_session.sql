-- {gateway_schema}.session_refusal(sid, sub): why the session of one token is not good any more
-- (session_revoked, session_expired, user_suspended), or NULL while it is live and its user
-- active. It answers for one (sid, sub) pair and nothing else: a session id is 256 random bits
-- that only the token's holder knows. SECURITY DEFINER so that the API roles need no right on
-- the gateway's tables; two primary-key probes (sessions.id, then users.id).
CREATE OR REPLACE FUNCTION {gateway_schema}.session_refusal(sid text, sub text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
  SELECT CASE
    WHEN s.id IS NULL OR u.id IS NULL THEN 'session_revoked'
    WHEN u.status <> 'active' THEN 'user_suspended'
    WHEN s.revoked_at IS NOT NULL THEN 'session_revoked'
    WHEN s.expires_at <= now() THEN 'session_expired'
  END
  FROM (SELECT) AS one
  LEFT JOIN {gateway_schema}.sessions AS s ON s.id = $1 AND s.user_id::text = $2
  LEFT JOIN {gateway_schema}.users AS u ON u.id = s.user_id
$fn$;

REVOKE ALL ON FUNCTION {gateway_schema}.session_refusal(text, text) FROM PUBLIC;

-- auth.check_session(): PostgREST's db-pre-request. It runs as the request's role after the
-- token was verified; a request whose claims carry no sid (anonymous, the anon key, a token the
-- gateway did not issue for a session) passes, any other must name a live session.
CREATE OR REPLACE FUNCTION auth.check_session() RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  claims jsonb := nullif(current_setting('request.jwt.claims', true), '')::jsonb;
  refusal text;
BEGIN
  IF claims IS NULL OR NOT claims ? 'sid' THEN
    RETURN;
  END IF;
  refusal := {gateway_schema}.session_refusal(claims ->> 'sid', claims ->> 'sub');
  IF refusal IS NULL THEN
    RETURN;
  END IF;
  RAISE SQLSTATE 'PGRST' USING
    message = json_build_object(
      'code', refusal,
      'message', CASE refusal
        WHEN 'user_suspended' THEN 'This account is suspended.'
        WHEN 'session_expired' THEN 'This session has expired; sign in again.'
        ELSE 'This session has ended; sign in again.'
      END,
      'details', NULL,
      'hint', NULL
    )::text,
    detail = json_build_object(
      'status', 401,
      'headers', json_build_object('WWW-Authenticate', 'Bearer error="invalid_token"')
    )::text;
END
$fn$;
