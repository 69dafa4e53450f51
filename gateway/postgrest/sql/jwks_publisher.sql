-- auth.publish_jwks(document): the one thing the gateway may do to PostgREST's configuration.
-- It checks that the document is a JWK Set of public keys only, stores it as the authenticator's
-- pgrst.jwt_secret in this database (where PostgREST's db-config reads it) and asks PostgREST to
-- reload, all in the caller's transaction. SECURITY DEFINER: it runs as the role that
-- bootstrapped, so the gateway needs no right to ALTER ROLE; EXECUTE is granted to one role.
CREATE OR REPLACE FUNCTION auth.publish_jwks(document text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  jwks jsonb;
  jwk jsonb;
  private_members text[] := ARRAY['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
BEGIN
  IF document IS NULL OR octet_length(document) > 65536 THEN
    RAISE EXCEPTION 'the JWKS must be a JSON document of at most 64 KiB'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  BEGIN
    jwks := document::jsonb;
  EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'the JWKS is not JSON' USING ERRCODE = 'invalid_parameter_value';
  END;
  IF jsonb_typeof(jwks) IS DISTINCT FROM 'object'
     OR jsonb_typeof(jwks -> 'keys') IS DISTINCT FROM 'array'
     OR jsonb_array_length(jwks -> 'keys') = 0 THEN
    RAISE EXCEPTION 'the JWKS must be an object whose "keys" is a non-empty array'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR jwk IN SELECT value FROM jsonb_array_elements(jwks -> 'keys') LOOP
    IF jsonb_typeof(jwk) IS DISTINCT FROM 'object'
       OR jwk ->> 'kty' IS NULL OR jwk ->> 'kty' NOT IN ('EC', 'OKP', 'RSA') THEN
      RAISE EXCEPTION 'every key of the JWKS must be an EC, OKP or RSA public key'
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jwk ?| private_members THEN
      RAISE EXCEPTION 'key % of the JWKS holds a private member: only public keys may be published',
        coalesce(jwk ->> 'kid', '(no kid)')
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  EXECUTE format(
    'ALTER ROLE %I IN DATABASE %I SET pgrst.jwt_secret = %L',
    {authenticator_literal}, current_database(), jwks::text
  );
  PERFORM pg_notify('pgrst', 'reload config');
END
$fn$;

REVOKE ALL ON FUNCTION auth.publish_jwks(text) FROM PUBLIC;
