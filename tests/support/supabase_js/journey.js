// A supabase-js app's whole journey through the gateway, unchanged: prints one JSON document
// of what each call returned, for tests/e2e/test_supabase_js.py to assert on.
'use strict';
const { createClient } = require('@supabase/supabase-js');

const url = process.env.SUPABASE_URL;
const anonKey = process.env.SUPABASE_ANON_KEY;
const email = process.env.SUPABASE_EMAIL;
const password = process.env.SUPABASE_PASSWORD;
const organizationId = Number(process.env.SUPABASE_ORGANIZATION_ID);
const noStorage = { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false };

const error = (e) => (e ? { status: e.status ?? null, code: e.code ?? null, message: e.message } : null);

async function main() {
  const out = {};
  const supabase = createClient(url, anonKey, { auth: noStorage });

  const anonymous = await supabase.rpc('echo_request');
  out.anonymousEcho = { error: error(anonymous.error), data: anonymous.data };

  const signIn = await supabase.auth.signInWithPassword({ email, password });
  out.signIn = {
    error: error(signIn.error),
    userId: signIn.data.user?.id ?? null,
    hasSession: Boolean(signIn.data.session),
  };
  const firstToken = signIn.data.session?.access_token;
  out.firstAccessToken = firstToken ?? null;

  const select = await supabase.from('projects').select('*', { count: 'exact' }).order('id');
  out.select = {
    error: error(select.error),
    status: select.status,
    count: select.count,
    names: (select.data ?? []).map((row) => row.name),
  };

  const insert = await supabase
    .from('projects')
    .insert({ organization_id: organizationId, name: 'made by supabase-js' })
    .select();
  out.insert = { error: error(insert.error), status: insert.status, rows: insert.data };

  const rpc = await supabase.rpc('project_count');
  out.rpc = { error: error(rpc.error), data: rpc.data };

  const user = await supabase.auth.getUser();
  out.getUser = { error: error(user.error), id: user.data.user?.id ?? null, email: user.data.user?.email ?? null };

  const refreshed = await supabase.auth.refreshSession();
  const secondToken = refreshed.data.session?.access_token;
  out.refresh = {
    error: error(refreshed.error),
    newAccessToken: Boolean(secondToken) && secondToken !== firstToken,
    newRefreshToken: refreshed.data.session?.refresh_token !== signIn.data.session?.refresh_token,
  };
  const afterRefresh = await supabase.from('projects').select('id', { count: 'exact', head: true });
  out.afterRefresh = { error: error(afterRefresh.error), count: afterRefresh.count };

  const signOut = await supabase.auth.signOut();
  out.signOut = { error: error(signOut.error) };

  // The token the app held a moment ago, as a stale tab would still send it.
  const stale = createClient(url, anonKey, {
    auth: noStorage,
    global: { headers: { Authorization: `Bearer ${secondToken}` } },
  });
  // Revocation reaches the mount through the revocation feed (at once, not synchronously with
  // the logout's commit): poll for the refusal for up to 2 s and report how long it took.
  const started = Date.now();
  let staleSelect = await stale.from('projects').select('*');
  while (staleSelect.status !== 401 && Date.now() - started < 2000) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    staleSelect = await stale.from('projects').select('*');
  }
  out.staleSelect = {
    status: staleSelect.status,
    error: error(staleSelect.error),
    refusedAfterMs: Date.now() - started,
  };
  const raw = await fetch(`${url}/rest/v1/projects?select=name`, {
    headers: { apikey: anonKey, Authorization: `Bearer ${secondToken}` },
  });
  out.staleRaw = { status: raw.status, body: await raw.json() };

  const signedOutSelect = await supabase.from('projects').select('*');
  out.signedOutSelect = { status: signedOutSelect.status, error: error(signedOutSelect.error) };
  return out;
}

main().then(
  (out) => console.log(JSON.stringify(out)),
  (e) => {
    console.log(JSON.stringify({ fatal: String((e && e.stack) || e) }));
    process.exit(1);
  },
);
