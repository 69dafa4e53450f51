"""What the /rest mount costs: PostgREST direct against PostgREST through the gateway and nginx.

    uv run python -m bench.proxy --quick           # the headline table, under 3 minutes
    uv run python -m bench.proxy [--duration 6] [--connections 16] [--unix-socket] [--workers N]
    uv run python -m bench.proxy --quick --flame docs/flame-after.svg

Run it from the repository root. It needs `wrk` (Debian: `apt-get install wrk`), PostgreSQL (the
server at GATEWAY_TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres, or
else the server binaries for a throwaway cluster) and the PostgREST 12.0.2 binary the tests use
(downloaded once into .cache/). Everything it creates (a database, three roles, a keystore,
PostgREST, `gateway serve` and nginx processes) is removed at the end, on error and on Ctrl-C too.
On a quiet machine the full run takes about 15 minutes (plus about 6 with --unix-socket), and
--quick under 3; add up to --patience seconds per run while other work keeps the machine busy
(see --quiet). Progress lines go to stderr.

What it does:

1. A fresh database, bootstrapped as tests/e2e/conftest.py does it: `gateway db upgrade`,
   `gateway keys init`, `gateway postgrest bootstrap --example`, an organization, a user, and 100
   rows in `public.projects` for that organization.
2. Per upstream configuration (PostgREST with its defaults, PostgREST with its JWT cache on as
   compose.yaml runs it, and with --unix-socket the latter on a Unix socket): the real
   PostgREST, and two real `gateway serve` (--workers Granian workers each, default 1) in front
   of it, at GATEWAY_LOG_LEVEL=warning and at the default `info` (a log line per request), and
   nginx (when installed). --quick: the warning gateway only, the single-row GET only.
3. One sign-in through the gateway (`POST /auth/login`); every request carries that token.
4. Per upstream and scenario, on a table vacuumed back to its 100 rows, a warm-up, then
   --rounds rounds of wrk against every target, interleaved and in alternating order so that
   drift hits all alike. Medians over the rounds are reported, with the CPU time each process
   used. Then (full run) the gateway alone, sign-ins, a login storm, 1 against
   --compare-workers workers, token rates.
5. Markdown on stdout and in docs/benchmarks.md (overwritten; --no-write leaves it): the
   headline, the issue's targets each met or not with the measured value, every round. --quick
   prints the headline table only and writes nothing.
6. With --profile SECONDS: py-spy (`python3 -m pip install --target /tmp/pyspy py-spy`, found on
   PATH or in /tmp/pyspy/bin, or given with --py-spy) samples the gateway under the single-row
   load; the report gets the top costs. With --flame SVG, a py-spy flame graph instead.

This is a command, not a test: pytest never collects it. The modules: scenarios (the requests),
targets (PostgREST, the gateways, nginx; started and stopped), database (the throwaway
database), measure (wrk, CPU time, how busy the machine is), profile (py-spy), benchmark (the
whole run), tables and report (docs/benchmarks.md and its plot), cli (the options).
"""
