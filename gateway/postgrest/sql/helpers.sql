-- The auth helpers: what a row-level security policy calls to learn who is asking.
-- PostgREST puts the verified token's claims in request.jwt.claims for the transaction; for an
-- anonymous request it holds only {"role": "<anon role>"}, so no "sub": the helpers say NULL.
CREATE SCHEMA IF NOT EXISTS auth;

CREATE OR REPLACE FUNCTION auth.claims() RETURNS jsonb
LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN claims ? 'sub' THEN claims END
  FROM (SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb AS claims) AS c
$$;

CREATE OR REPLACE FUNCTION auth.user_id() RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT (auth.claims() -> 'user' ->> 'user_id')::bigint $$;

CREATE OR REPLACE FUNCTION auth.organization_id() RETURNS bigint
LANGUAGE sql STABLE AS $$ SELECT (auth.claims() -> 'organization' ->> 'organization_id')::bigint $$;

CREATE OR REPLACE FUNCTION auth.org_role() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT auth.claims() -> 'user' ->> 'role' $$;

CREATE OR REPLACE FUNCTION auth.email() RETURNS text
LANGUAGE sql STABLE AS $$ SELECT auth.claims() -> 'user' ->> 'email' $$;
