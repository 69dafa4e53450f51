"""What the /rest mount costs: PostgREST direct against PostgREST through the gateway.

    uv run python -m bench.proxy [--duration 10] [--connections 32]

Run it from the repository root. It needs `wrk` (Debian: `apt-get install wrk`), PostgreSQL (the
server at GATEWAY_TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres, or
else the server binaries for a throwaway cluster) and the PostgREST 12.0.2 binary the tests use
(downloaded once into .cache/). Everything it creates (a database, three roles, a keystore,
PostgREST and `gateway serve` processes) is removed at the end, on error and on Ctrl-C too.
On a quiet machine the defaults take about 13 minutes and `--duration 4` about 7, plus up to
--patience seconds per run while other work keeps the machine busy (see --quiet).

What it does:

1. A fresh database, bootstrapped as tests/e2e/conftest.py does it: `gateway db upgrade`,
   `gateway keys init`, `gateway postgrest bootstrap --example`, an organization, a user, and 100
   rows in `public.projects` for that organization.
2. Per upstream configuration (PostgREST as compose.yaml runs it, and the same with PostgREST's
   JWT cache on): the real PostgREST, and two real `gateway serve` (one Granian worker each) in
   front of it, at GATEWAY_LOG_LEVEL=warning and at the default `info` (a log line per request).
3. One sign-in through the gateway (`POST /auth/login`); every request carries that token.
4. Per upstream and scenario, a warm-up, then --rounds rounds of wrk against PostgREST direct,
   gateway (warning) and gateway (info), interleaved and in alternating order so that drift hits
   all three alike. Medians over the rounds are reported, with the CPU time each process used.
5. A markdown table on stdout and in docs/benchmarks.md (overwritten; --no-write leaves it).
6. With --profile SECONDS: py-spy (`python3 -m pip install --target /tmp/pyspy py-spy`, found on
   PATH or in /tmp/pyspy/bin, or given with --py-spy) samples the gateway under the single-row
   load; the report gets the top costs.

This is a command, not a test: pytest never collects it. The modules: scenarios (the requests),
targets (PostgREST, the gateways, nginx; started and stopped), database (the throwaway
database), measure (wrk, CPU time, how busy the machine is), profile (py-spy), benchmark (the
whole run), tables and report (docs/benchmarks.md and its plot), cli (the options).
"""
