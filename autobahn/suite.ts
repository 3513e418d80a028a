/**
 * Running a selection of cases and reading the results: the echo server the suite runs against,
 * selection (quick / patterns), per-section summaries, regressions against expected-results.json, and
 * the lines `npm run conformance` prints.
 */
import type { AddressInfo } from 'node:net';
import type { SecureServerOptions } from 'node:http2';
import { serve, type WebSocketServer } from '../src/index.ts';
import { ALL_CASES, SECTIONS, sectionOf } from './cases/index.ts';
import type { ConnectTarget, Http2Target } from './client.ts';
import type { ExpectedResults } from './expected.ts';
import {
  Behavior,
  compareCaseIds,
  matchesCasePattern,
  passes,
  runCase,
  type CaseResult,
  type ClientUnderTest,
  type ConformanceCase,
  type RunCaseOptions,
} from './harness.ts';

export interface Selection {
  /** Only the cases marked `quick`. */
  readonly quick?: boolean;
  /** Autobahn case patterns (`6.4.*`, `1.1.1`); none selects every case. */
  readonly patterns?: readonly string[];
}

export function selectCases(selection: Selection = {}, all: readonly ConformanceCase[] = ALL_CASES): ConformanceCase[] {
  const patterns = selection.patterns ?? [];
  return all
    .filter((c) => selection.quick !== true || c.quick === true)
    .filter((c) => patterns.length === 0 || patterns.some((p) => matchesCasePattern(c.id, p)))
    .sort((a, b) => compareCaseIds(a.id, b.id));
}

export interface SuiteOptions {
  /** The server under test. */
  readonly target?: ConnectTarget;
  /** Or the server under test over HTTP/2: every case is a stream on this target's one session. */
  readonly http2?: Http2Target;
  /** Or the client under test (the replay against a client, testee.ts). */
  readonly testee?: ClientUnderTest;
  /** Multiplies the cases' deliberate waits; 1 is Autobahn's timing. */
  readonly timeScale?: number;
  /** Called after each case. */
  readonly onResult?: (result: CaseResult) => void;
}

/** Runs the cases one after the other (several cases measure timing). */
export async function runSuite(cases: readonly ConformanceCase[], options: SuiteOptions): Promise<CaseResult[]> {
  const results: CaseResult[] = [];
  const { target, http2, testee } = options;
  const runOptions: RunCaseOptions = {
    ...(target === undefined ? {} : { target }),
    ...(http2 === undefined ? {} : { http2 }),
    ...(testee === undefined ? {} : { testee }),
    timeScale: options.timeScale ?? 1,
  };
  for (const definition of cases) {
    const result = await runCase(definition, runOptions);
    results.push(result);
    options.onResult?.(result);
  }
  return results;
}

/**
 * The server `npm start` runs, in this process: an echo handler, messages up to 64 MiB (the largest
 * Autobahn messages are 16 MiB), permessage-deflate (sections 12 and 13), on 127.0.0.1 and a free port.
 * With `tls`, the same server speaks `wss://`, over HTTP/1.1 and HTTP/2 on one port (http2.ts).
 */
export async function startEchoServer(options: { readonly tls?: SecureServerOptions } = {}): Promise<{ server: WebSocketServer; target: ConnectTarget }> {
  const server = await serve(
    async (ws) => {
      await ws.accept();
      for await (const message of ws) await ws.send(message);
    },
    {
      port: 0,
      host: '127.0.0.1',
      maxMessageSize: 64 * 1024 * 1024,
      perMessageDeflate: true,
      ...(options.tls === undefined ? {} : { tls: options.tls }),
    },
  );
  const address = server.address() as AddressInfo;
  return { server, target: { host: '127.0.0.1', port: address.port } };
}

export interface SectionSummary {
  readonly section: string;
  readonly title: string;
  readonly cases: number;
  readonly ok: number;
  readonly nonStrict: number;
  readonly failed: number;
  readonly informational: number;
  /** Sum of the case durations, in ms. */
  readonly duration: number;
}

export function summarize(results: readonly CaseResult[]): SectionSummary[] {
  const bySection = new Map<string, CaseResult[]>();
  for (const result of results) {
    const section = sectionOf(result.id);
    let list = bySection.get(section);
    if (list === undefined) bySection.set(section, (list = []));
    list.push(result);
  }
  return [...bySection.entries()]
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([section, list]) => ({
      section,
      title: SECTIONS[section] ?? 'Misc',
      cases: list.length,
      ok: list.filter((r) => r.behavior === Behavior.OK).length,
      nonStrict: list.filter((r) => r.behavior === Behavior.NonStrict).length,
      failed: list.filter((r) => r.behavior !== Behavior.OK && r.behavior !== Behavior.NonStrict && r.behavior !== Behavior.Informational).length,
      informational: list.filter((r) => r.behavior === Behavior.Informational).length,
      duration: list.reduce((sum, r) => sum + r.duration, 0),
    }));
}

export interface Regression {
  readonly id: string;
  /** Allowed behaviors, or empty when the case is not listed in expected-results.json. */
  readonly allowed: readonly string[];
  readonly behavior: string;
  readonly behaviorClose: string;
  readonly detail: string;
}

/** Results that are not what expected-results.json allows (including cases it does not list). */
export function findRegressions(results: readonly CaseResult[], expected: ExpectedResults): Regression[] {
  const regressions: Regression[] = [];
  for (const result of results) {
    const allowed = expected.cases.get(result.id) ?? [];
    if (allowed.length > 0 && passes(result, allowed)) continue;
    regressions.push({
      id: result.id,
      allowed,
      behavior: result.behavior,
      behaviorClose: result.behaviorClose,
      detail: allowed.length === 0 ? 'not listed in expected-results.json' : `${result.result} ${result.resultClose}`,
    });
  }
  return regressions;
}

// ---------------------------------------------------------------- printing

const cut = (text: string, width: number): string => (text.length <= width ? text : `${text.slice(0, width - 1)}…`);

/** One line per case: id, behavior, close behavior, the server's close code, duration, description. */
export function formatResult(result: CaseResult): string {
  const code = result.remoteCloseCode === null ? '-' : String(result.remoteCloseCode);
  return (
    `${result.id.padEnd(8)} ${result.behavior.padEnd(13)} close ${result.behaviorClose.padEnd(16)} ` +
    `${code.padStart(5)} ${`${result.duration} ms`.padStart(9)}  ${cut(result.description, 90)}`
  );
}

export function formatSummary(sections: readonly SectionSummary[], wallTime: number): string {
  const header = `${'Section'.padEnd(24)} ${'Cases'.padStart(5)} ${'OK'.padStart(5)} ${'NON-STRICT'.padStart(10)} ${'FAILED'.padStart(6)} ${'INFO'.padStart(5)} ${'Time'.padStart(9)}`;
  const row = (name: string, s: Omit<SectionSummary, 'section' | 'title'>): string =>
    `${name.padEnd(24)} ${String(s.cases).padStart(5)} ${String(s.ok).padStart(5)} ${String(s.nonStrict).padStart(10)} ` +
    `${String(s.failed).padStart(6)} ${String(s.informational).padStart(5)} ${`${(s.duration / 1000).toFixed(1)} s`.padStart(9)}`;
  const total = sections.reduce(
    (t, s) => ({
      cases: t.cases + s.cases,
      ok: t.ok + s.ok,
      nonStrict: t.nonStrict + s.nonStrict,
      failed: t.failed + s.failed,
      informational: t.informational + s.informational,
      duration: t.duration + s.duration,
    }),
    { cases: 0, ok: 0, nonStrict: 0, failed: 0, informational: 0, duration: 0 },
  );
  return [
    header,
    ...sections.map((s) => row(`${s.section.padEnd(3)}${s.title}`, s)),
    row('Total', total),
    `Run time: ${(wallTime / 1000).toFixed(1)} s`,
  ].join('\n');
}
