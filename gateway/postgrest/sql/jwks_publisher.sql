-- auth.publish_jwks(document): the one thing the gateway may do to PostgREST's configuration.
-- It checks that the document is a JWK Set of public keys only, stores it as the authenticator's
-- pgrst.jwt_secret in this database (where PostgREST's db-config reads it) and asks PostgREST to
-- reload, all in the caller's transaction. SECURITY DEFINER: it runs as the role that
-- bootstrapped, so the gateway needs no right to ALTER ROLE; EXECUTE is granted to one role.
--
-- The checks are strict because PostgREST does not refuse what it cannot read: a document it
-- cannot parse as a JWK Set is tried as one JWK (so no member but "keys" at the top), then used
-- as an HMAC secret, and a public text as a secret lets anyone forge tokens. So every key must
-- match one profile of `rules` exactly (gateway/postgrest/_jwk_rules.py renders them here).
CREATE OR REPLACE FUNCTION auth.publish_jwks(document text) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  rules jsonb := {jwk_rules};
  jwks jsonb;
  jwk jsonb;
  profile jsonb;
  member text;
  bounds jsonb;
  encoded text;
  raw bytea;
  problem text;
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
  IF EXISTS (SELECT FROM jsonb_object_keys(jwks) AS top WHERE top <> 'keys') THEN
    RAISE EXCEPTION 'the JWKS may hold no member but "keys"'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_array_length(jwks -> 'keys') > (rules ->> 'max_keys')::int THEN
    RAISE EXCEPTION 'the JWKS holds more than % keys', rules ->> 'max_keys'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOR jwk IN SELECT value FROM jsonb_array_elements(jwks -> 'keys') LOOP
    problem := NULL;
    profile := NULL;
    IF jsonb_typeof(jwk) IS DISTINCT FROM 'object' THEN
      problem := 'is not a JSON object';
      jwk := '{}';
    ELSIF jwk ?| private_members THEN
      problem := 'holds a private member: only public keys may be published';
    ELSIF jsonb_typeof(jwk -> 'kty') = 'string'
          AND (NOT jwk ? 'crv' OR jsonb_typeof(jwk -> 'crv') = 'string') THEN
      profile := rules -> 'profiles' -> ((jwk ->> 'kty') || coalesce('/' || (jwk ->> 'crv'), ''));
    END IF;
    IF problem IS NULL AND profile IS NULL THEN
      problem := 'is not one of the public key types '
        || (SELECT string_agg(name, ', ') FROM jsonb_object_keys(rules -> 'profiles') AS name);
    ELSIF problem IS NULL AND EXISTS (
      SELECT FROM jsonb_object_keys(jwk) AS m
      WHERE NOT (rules -> 'common' ? m OR profile -> 'sizes' ? m OR (m = 'crv' AND jwk ? 'crv'))
    ) THEN
      problem := 'holds a member outside its type''s ' || (rules ->> 'common')
        || ', crv and ' || (SELECT string_agg(k, ', ') FROM jsonb_object_keys(profile -> 'sizes') AS k);
    ELSIF problem IS NULL AND jwk ? 'alg' AND jwk -> 'alg' IS DISTINCT FROM profile -> 'alg' THEN
      problem := format('has an alg its type does not allow (only %s)', profile ->> 'alg');
    ELSIF problem IS NULL AND jwk ? 'use' AND jwk -> 'use' IS DISTINCT FROM '"sig"'::jsonb THEN
      problem := 'has a "use" other than "sig"';
    ELSIF problem IS NULL AND jwk ? 'key_ops'
          AND jwk -> 'key_ops' IS DISTINCT FROM '["verify"]'::jsonb THEN
      problem := 'has "key_ops" other than ["verify"]';
    ELSIF problem IS NULL AND jwk ? 'kid' AND (
      jsonb_typeof(jwk -> 'kid') IS DISTINCT FROM 'string'
      OR length(jwk ->> 'kid') NOT BETWEEN 1 AND (rules ->> 'max_kid')::int
    ) THEN
      problem := format('has a kid that is not a string of 1 to %s characters', rules ->> 'max_kid');
    END IF;
    IF problem IS NULL THEN
      FOR member, bounds IN SELECT key, value FROM jsonb_each(profile -> 'sizes') LOOP
        encoded := CASE WHEN jsonb_typeof(jwk -> member) = 'string' THEN jwk ->> member END;
        raw := NULL;
        IF encoded ~ '^[A-Za-z0-9_-]+$' AND length(encoded) % 4 <> 1 THEN
          BEGIN
            raw := decode(
              rpad(translate(encoded, '-_', '+/'), (length(encoded) + 3) / 4 * 4, '='), 'base64'
            );
          EXCEPTION WHEN invalid_parameter_value OR data_exception THEN
            raw := NULL;
          END;
        END IF;
        IF raw IS NULL
           OR rtrim(translate(replace(encode(raw, 'base64'), E'\n', ''), '+/', '-_'), '=')
              IS DISTINCT FROM encoded
           OR octet_length(raw) NOT BETWEEN (bounds ->> 0)::int AND (bounds ->> 1)::int THEN
          problem := format(
            'has a %s that is not canonical base64url of %s-%s bytes',
            member, bounds ->> 0, bounds ->> 1
          );
          EXIT;
        END IF;
      END LOOP;
    END IF;
    IF problem IS NOT NULL THEN
      RAISE EXCEPTION 'key % of the JWKS %',
        CASE WHEN jsonb_typeof(jwk -> 'kid') = 'string' THEN jwk ->> 'kid' ELSE '(no kid)' END,
        problem
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
