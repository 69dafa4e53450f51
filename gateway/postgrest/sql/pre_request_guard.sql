-- Never replace another db-pre-request: the operator's function would silently stop running.
DO $$
DECLARE
  existing text;
BEGIN
  SELECT substr(setting, length('pgrst.db_pre_request=') + 1) INTO existing
  FROM pg_db_role_setting AS d
  JOIN pg_roles AS r ON r.oid = d.setrole
  CROSS JOIN LATERAL unnest(d.setconfig) AS setting
  WHERE r.rolname = {authenticator_literal}
    AND d.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
    AND setting LIKE 'pgrst.db\_pre\_request=%'
  ORDER BY d.setdatabase = 0
  LIMIT 1;
  IF existing IS NOT NULL AND existing <> {pre_request_literal} THEN
    RAISE EXCEPTION 'pgrst.db_pre_request of % is already %, which --check-sessions would '
      'replace: call PERFORM auth.check_session(); at the start of %, or RESET '
      'pgrst.db_pre_request on that role, then run bootstrap again',
      {authenticator_literal}, existing, existing USING ERRCODE = 'object_in_use';
  END IF;
END $$;
