/**
 * `npm run conformance`: replays the Autobahn fuzzingclient cases of sections 1-7, 9, 10, 12 and 13
 * against the echo server and fails on any regression from autobahn/expected-results.json. With
 * `--client`, replays them the other way round, as Autobahn's fuzzingserver: the replay is the server
 * and our client (`connect`, in this process) echoes (testee.ts). With `--http2`, replays them against
 * the echo server over HTTP/2 (RFC 8441): TLS, one session, one extended CONNECT stream per case
 * (http2.ts; client.ts says how the TCP events of the grading map to the stream).
 *
 *   npm run conformance                               # every case, against an in-process echo server
 *   npm run conformance -- --quick                    # the quick selection that `npm test` runs
 *   npm run conformance -- --cases '6.4.*' --cases 7.9.1
 *   npm run conformance -- --url ws://127.0.0.1:9001  # against a running `npm start`
 *   npm run conformance -- --cases '12.*' --testdata DIR  # sections 12/13 with Autobahn's own payload files
 *   npm run conformance -- --client                   # every case, against our client
 *   npm run conformance -- --http2 --quick            # over HTTP/2 streams (combines with --quick, --cases)
 *
 * Prints one line per case and a summary per section, writes autobahn/reports/conformance.json, and
 * exits with 1 when a case is not what expected-results.json allows (2 on bad arguments).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { WebSocketServer } from '../src/index.ts';
import type { ConnectTarget, Http2Target } from './client.ts';
import type { CaseResult } from './harness.ts';
import { useAutobahnTestData } from './cases/compression-corpora.ts';
import { EXPECTED_RESULTS_PATH, loadExpectedResults } from './expected.ts';
import { closeHttp2Session, openHttp2Session, startHttp2EchoServer, type SessionWatch } from './http2.ts';
import { findRegressions, formatResult, formatSummary, runSuite, selectCases, startEchoServer, summarize } from './suite.ts';
import { startClientTestee, type ClientTestee } from './testee.ts';

const DEFAULT_REPORT = fileURLToPath(new URL('./reports/conformance.json', import.meta.url));
const DEFAULT_CLIENT_REPORT = fileURLToPath(new URL('./reports/conformance-client.json', import.meta.url));
const DEFAULT_HTTP2_REPORT = fileURLToPath(new URL('./reports/conformance-http2.json', import.meta.url));

const USAGE = `usage: npm run conformance -- [--quick] [--cases PATTERN]... [--url ws://HOST:PORT/PATH | --client | --http2]
                          [--time-scale N] [--report FILE] [--expected FILE] [--testdata DIR]
  --client         run the cases against our client (connect(), in this process): the replay is the
                   server, as Autobahn's fuzzingserver; the report goes to reports/conformance-client.json
  --http2          run the cases against the in-process echo server over HTTP/2 (RFC 8441): TLS with the
                   test fixture's certificate, one session, one extended CONNECT stream per case; the
                   report goes to reports/conformance-http2.json
  --testdata DIR   sections 12 and 13 cut their messages from Autobahn's own files in DIR (its
                   autobahntestsuite/testdata folder) instead of the generated stand-ins`;

function parseTarget(url: string): ConnectTarget {
  const parsed = new URL(url);
  if (parsed.protocol !== 'ws:') throw new TypeError(`--url must be a ws:// URL, not ${url}`);
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: parsed.port === '' ? 80 : Number(parsed.port),
    path: `${parsed.pathname}${parsed.search}`,
  };
}

/** What became of the one HTTP/2 session of an `--http2` run. */
interface Http2Summary {
  /** Extended CONNECT streams opened on it (one per case that got as far as its request). */
  readonly streams: number;
  /** Null when it stayed open with no GOAWAY, session error or frame error; otherwise what happened. */
  readonly problem: string | null;
  /** The case after which the problem was first seen, or null. */
  readonly lostAfterCase: string | null;
}

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        client: { type: 'boolean', default: false },
        http2: { type: 'boolean', default: false },
        cases: { type: 'string', multiple: true },
        url: { type: 'string' },
        'time-scale': { type: 'string' },
        report: { type: 'string' },
        expected: { type: 'string' },
        testdata: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.client && values.url !== undefined) {
    console.error(`--client runs our own client in this process: it takes no --url\n${USAGE}`);
    return 2;
  }
  if (values.http2 && (values.client || values.url !== undefined)) {
    console.error(`--http2 runs against the in-process echo server with TLS: it takes no --url or --client\n${USAGE}`);
    return 2;
  }
  const patterns = (values.cases ?? []).flatMap((p) => p.split(',')).map((p) => p.trim()).filter((p) => p !== '');
  const cases = selectCases({ quick: values.quick, patterns });
  if (cases.length === 0) {
    console.error(`no case matches ${patterns.join(', ')}\n${USAGE}`);
    return 2;
  }
  const timeScale = values['time-scale'] === undefined ? 1 : Number(values['time-scale']);
  if (!(timeScale > 0)) {
    console.error(`--time-scale must be a positive number\n${USAGE}`);
    return 2;
  }
  const expected = loadExpectedResults(values.expected ?? EXPECTED_RESULTS_PATH);
  if (values.testdata !== undefined) {
    try {
      useAutobahnTestData(resolve(values.testdata));
    } catch (error) {
      console.error(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
      return 2;
    }
  }

  let server: WebSocketServer | null = null;
  let testee: ClientTestee | null = null;
  let watch: SessionWatch | null = null;
  let under: { readonly target: ConnectTarget } | { readonly testee: ClientTestee } | { readonly http2: Http2Target };
  let shownUrl: string;
  if (values.http2) {
    let port: number;
    ({ server, port } = await startHttp2EchoServer());
    let http2: Http2Target;
    try {
      ({ target: http2, watch } = await openHttp2Session(port));
    } catch (error) {
      await server.close({ timeout: 1000 });
      console.error(`the HTTP/2 session could not be opened: ${error instanceof Error ? error.message : String(error)}`);
      return 1;
    }
    under = { http2 };
    shownUrl = `https://127.0.0.1:${port}/ over HTTP/2 (in-process echo server, TLS; one session, an extended CONNECT stream per case)`;
  } else if (values.client) {
    testee = await startClientTestee();
    under = { testee };
    shownUrl = `our client (connect(), in-process), the replay serving on ws://127.0.0.1:${testee.port}/`;
  } else if (values.url !== undefined) {
    under = { target: parseTarget(values.url) };
    shownUrl = values.url;
  } else {
    let target: ConnectTarget;
    ({ server, target } = await startEchoServer());
    under = { target };
    shownUrl = `ws://${target.host}:${target.port}/ (in-process echo server)`;
  }

  console.log(`rfc6455 conformance: ${cases.length} case(s) against ${shownUrl}${timeScale === 1 ? '' : `, waits x${timeScale}`}`);
  const started = performance.now();
  const startedAt = new Date().toISOString();
  let results;
  // Over HTTP/2: the first case after which the shared session was no longer fit (GOAWAY, error, closed).
  let sessionLostAt: string | null = null;
  let http2Summary: Http2Summary | null = null;
  const onResult = (result: CaseResult): void => {
    console.log(formatResult(result));
    if (watch !== null && sessionLostAt === null && watch.problem() !== null) {
      sessionLostAt = result.id;
      console.log(`         the HTTP/2 session failed during or before this case: ${watch.problem()}`);
    }
  };
  try {
    results = await runSuite(cases, { ...under, timeScale, onResult });
  } finally {
    if (watch !== null) {
      // Read before the session is closed on purpose (its own 'close' is no problem).
      http2Summary = { streams: watch.streams, problem: watch.problem(), lostAfterCase: sessionLostAt };
      await closeHttp2Session(watch.session);
    }
    await server?.close({ timeout: 1000 });
    await testee?.close();
  }
  const wallTime = Math.round(performance.now() - started);
  const summary: Http2Summary | null = http2Summary;
  const sections = summarize(results);
  const regressions = findRegressions(results, expected);

  console.log(`\n${formatSummary(sections, wallTime)}`);
  if (regressions.length === 0) {
    console.log(`\nNo regression from autobahn/expected-results.json: every case is as expected.`);
  } else {
    console.log(`\n${regressions.length} regression(s) from autobahn/expected-results.json:`);
    for (const r of regressions) {
      const wanted = r.allowed.length === 0 ? 'unlisted' : r.allowed.join(' or ');
      console.log(`  ${r.id}: ${r.behavior} (close ${r.behaviorClose}), expected ${wanted}: ${r.detail}`);
    }
  }

  if (summary !== null) {
    console.log(
      summary.problem === null
        ? `HTTP/2: ${summary.streams} extended CONNECT stream(s) on one session; the session stayed open throughout (no GOAWAY, no session or frame error).`
        : `HTTP/2: ${summary.streams} extended CONNECT stream(s) on one session, which did NOT survive the run` +
            `${summary.lostAfterCase === null ? '' : ` (first seen after case ${summary.lostAfterCase})`}: ${summary.problem}`,
    );
  }

  const reportPath = resolve(values.report ?? (values.client ? DEFAULT_CLIENT_REPORT : values.http2 ? DEFAULT_HTTP2_REPORT : DEFAULT_REPORT));
  mkdirSync(dirname(reportPath), { recursive: true });
  const report = {
    agent: 'rfc6455',
    ...(values.client ? { tested: 'client' } : {}),
    ...(summary === null ? {} : { transport: 'http2', http2: summary }),
    target: shownUrl,
    selection: { quick: values.quick, patterns },
    testData: values.testdata === undefined ? 'generated stand-ins' : resolve(values.testdata),
    timeScale,
    startedAt,
    duration: wallTime,
    summary: sections,
    regressions,
    cases: Object.fromEntries(results.map((r) => [r.id, r])),
  };
  writeFileSync(reportPath, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`Report: ${reportPath}`);
  return regressions.length === 0 && summary?.problem == null ? 0 : 1;
}

process.exitCode = await main();
