-- Applied by `gateway postgrest bootstrap --example` (with every role of
-- GATEWAY_ALLOWED_ROLES in the GRANT); needs the auth.* helpers that bootstrap creates.
-- Kept equal to gateway/postgrest/sql/example.sql by tests/unit/test_postgrest_sql.py.

-- A worked example: projects that belong to an organization.
--   org_client reads its organization's rows; org_admin reads and writes them;
--   no other organization's row is ever visible; anonymous requests get nothing at all.
-- GRANTs decide which tables a role may touch; the policies below decide which rows.
-- Idempotent and additive: an existing table or policy of the same name is left as it is.
CREATE TABLE IF NOT EXISTS public.projects (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  organization_id bigint NOT NULL,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS projects_organization_id_idx ON public.projects (organization_id);

ALTER TABLE public.projects ENABLE ROW LEVEL SECURITY;

-- Signed-in roles may use the table (RLS filters the rows); the anonymous role gets no grant.
GRANT SELECT, INSERT, UPDATE, DELETE ON public.projects TO "authenticated";

DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_policies WHERE schemaname = 'public'
                 AND tablename = 'projects' AND policyname = 'projects_read') THEN
    CREATE POLICY projects_read ON public.projects FOR SELECT
      USING (organization_id = auth.organization_id());
  END IF;
END $$;

DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_policies WHERE schemaname = 'public'
                 AND tablename = 'projects' AND policyname = 'projects_insert') THEN
    CREATE POLICY projects_insert ON public.projects FOR INSERT
      WITH CHECK (organization_id = auth.organization_id() AND auth.org_role() = 'org_admin');
  END IF;
END $$;

DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_policies WHERE schemaname = 'public'
                 AND tablename = 'projects' AND policyname = 'projects_update') THEN
    CREATE POLICY projects_update ON public.projects FOR UPDATE
      USING (organization_id = auth.organization_id() AND auth.org_role() = 'org_admin')
      WITH CHECK (organization_id = auth.organization_id() AND auth.org_role() = 'org_admin');
  END IF;
END $$;

DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_policies WHERE schemaname = 'public'
                 AND tablename = 'projects' AND policyname = 'projects_delete') THEN
    CREATE POLICY projects_delete ON public.projects FOR DELETE
      USING (organization_id = auth.organization_id() AND auth.org_role() = 'org_admin');
  END IF;
END $$;
