-- {check_schema}: a schema holding session_refusal and nothing else. The API roles get USAGE on
-- it, never on the gateway's own schema (where every function defaults to PUBLIC EXECUTE).
CREATE SCHEMA IF NOT EXISTS {check_schema};
REVOKE ALL ON SCHEMA {check_schema} FROM PUBLIC;
-- (No ALTER DEFAULT PRIVILEGES here: per-schema defaults can only add to the global ones, so a
-- per-schema REVOKE EXECUTE FROM PUBLIC is a no-op. Put nothing else in this schema.)

-- Earlier versions kept session_refusal in the gateway's schema: it moves.
DROP FUNCTION IF EXISTS {gateway_schema}.session_refusal(text, text);

-- {check_schema}.session_refusal(sid, sub): why the session of one token is not good any more
-- (session_revoked, session_expired, user_suspended), or NULL while it is live and its user
-- active. It answers for one (sid, sub) pair and nothing else: a session id is 256 random bits
-- that only the token's holder knows. SECURITY DEFINER so that the API roles need no right on
-- the gateway's tables; two primary-key probes (sessions.id, then users.id).
CREATE OR REPLACE FUNCTION {check_schema}.session_refusal(sid text, sub text) RETURNS text
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

REVOKE ALL ON FUNCTION {check_schema}.session_refusal(text, text) FROM PUBLIC;

-- auth.check_session(): PostgREST's db-pre-request. It runs as the request's role after the
-- token was verified. Two kinds of request pass: the anonymous role with no sub and no sid (no
-- token, or the anon key), and a gateway access token (token_type "access_token", a sub and a
-- sid) whose session is live. Everything else is refused, whatever key signed it.
CREATE OR REPLACE FUNCTION auth.check_session() RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  claims jsonb := coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb, '{}');
  refusal text;
  status int := 401;
BEGIN
  IF current_user = {anon_literal} AND NOT claims ? 'sub' AND NOT claims ? 'sid' THEN
    RETURN;
  END IF;
  IF jsonb_typeof(claims -> 'sid') IS DISTINCT FROM 'string'
     OR jsonb_typeof(claims -> 'sub') IS DISTINCT FROM 'string'
     OR claims -> 'token_type' IS DISTINCT FROM '"access_token"'::jsonb THEN
    refusal := 'session_required';
  ELSE
    BEGIN
      refusal := {check_schema}.session_refusal(claims ->> 'sid', claims ->> 'sub');
    EXCEPTION WHEN OTHERS THEN
      -- The gateway's tables or this function's grants are missing: say nothing about them.
      refusal := 'session_check_unavailable';
      status := 503;
    END;
  END IF;
  IF refusal IS NULL THEN
    RETURN;
  END IF;
  RAISE SQLSTATE 'PGRST' USING
    message = json_build_object(
      'code', refusal,
      'message', CASE refusal
        WHEN 'user_suspended' THEN 'This account is suspended.'
        WHEN 'session_expired' THEN 'This session has expired; sign in again.'
        WHEN 'session_required' THEN 'This token names no session of the gateway; sign in.'
        WHEN 'session_check_unavailable' THEN 'Sessions cannot be checked now; try again later.'
        ELSE 'This session has ended; sign in again.'
      END,
      'details', NULL,
      'hint', NULL
    )::text,
    detail = json_build_object(
      'status', status,
      'headers', CASE WHEN status = 401
        THEN json_build_object('WWW-Authenticate', 'Bearer error="invalid_token"')
        ELSE json_build_object() END
    )::text;
END
$fn$;
