DO $$
DECLARE
  publisher name := {publisher};
  api_roles name[] := ARRAY[{api_roles}]::name[];
  publisher_oid oid;
  publisher_super boolean;
  other name;
  stale oid;
BEGIN
  IF publisher = 'public' OR publisher LIKE 'pg\_%' OR publisher = ANY (api_roles) THEN
    RAISE EXCEPTION 'the JWKS publisher role % may not be PUBLIC, a pg_* role, or the anon, '
      'signed-in or authenticator role: name the role the gateway connects as '
      '(--jwks-publisher-role)', quote_ident(publisher) USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT oid, rolsuper INTO publisher_oid, publisher_super FROM pg_roles WHERE rolname = publisher;
  IF publisher_oid IS NULL THEN
    RAISE EXCEPTION 'the JWKS publisher role % does not exist: create it first, or name another '
      'with --jwks-publisher-role', quote_ident(publisher)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- A role an API role can become would let PostgREST's requests publish: never.
  SELECT a INTO other FROM unnest(api_roles) AS a
  WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = a) AND pg_has_role(a, publisher_oid, 'MEMBER')
  LIMIT 1;
  IF other IS NOT NULL THEN
    RAISE EXCEPTION 'the JWKS publisher role % can be taken on by the API role %: name a role '
      'that no API role is a member of', quote_ident(publisher), quote_ident(other)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- A role that can become an API role is one of them. The owner (who runs this bootstrap) and
  -- superusers need no grant to call the function, so for them nothing is granted.
  IF publisher <> current_user AND NOT publisher_super THEN
    SELECT a INTO other FROM unnest(api_roles) AS a
    WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = a) AND pg_has_role(publisher_oid, a, 'MEMBER')
    LIMIT 1;
    IF other IS NOT NULL THEN
      RAISE EXCEPTION 'the JWKS publisher role % is a member of the API role %: name a role '
        'that cannot act as the anon, signed-in or authenticator roles',
        quote_ident(publisher), quote_ident(other) USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA auth TO %I', publisher);
    EXECUTE format('GRANT EXECUTE ON FUNCTION auth.publish_jwks(text) TO %I', publisher);
  END IF;
  -- Only the owner and this publisher keep EXECUTE: an earlier bootstrap's publisher loses it.
  FOR stale IN
    SELECT DISTINCT a.grantee
    FROM pg_proc AS p
    CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
    WHERE p.oid = 'auth.publish_jwks(text)'::regprocedure
      AND a.privilege_type = 'EXECUTE'
      AND a.grantee <> p.proowner
      AND (a.grantee <> publisher_oid OR publisher = current_user OR publisher_super)
  LOOP
    IF stale = 0 THEN
      REVOKE EXECUTE ON FUNCTION auth.publish_jwks(text) FROM PUBLIC;
    ELSE
      EXECUTE format(
        'REVOKE EXECUTE ON FUNCTION auth.publish_jwks(text) FROM %I', pg_get_userbyid(stale)
      );
    END IF;
  END LOOP;
END $$;
