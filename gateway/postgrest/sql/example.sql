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
GRANT SELECT, INSERT, UPDATE, DELETE ON public.projects TO {signed_in_roles};

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

-- A function for POST /rest/rpc/project_count (supabase-js: rpc('project_count')): how many
-- projects the caller's organization has. SECURITY INVOKER, so the policies above apply; only
-- signed-in roles may call it (functions are executable by PUBLIC unless revoked).
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_proc WHERE proname = 'project_count'
                 AND pronamespace = 'public'::regnamespace) THEN
    CREATE FUNCTION public.project_count() RETURNS bigint
      LANGUAGE sql STABLE SECURITY INVOKER AS 'SELECT count(*) FROM public.projects';
    REVOKE EXECUTE ON FUNCTION public.project_count() FROM PUBLIC;
  END IF;
END $$;
GRANT EXECUTE ON FUNCTION public.project_count() TO {signed_in_roles};
