/**
 * `npm run autobahn:check <reports dir>`: checks an official Autobahn|Testsuite report against
 * autobahn/expected-results.json and fails, listing the cases, when any case is not what it allows.
 *
 * The report is the `index.json` the fuzzingclient writes next to index.html:
 *   { "<agent>": { "<case id>": { "behavior": "OK", "behaviorClose": "OK", "duration": 2, ... }, ... } }
 *
 * A case passes when its behavior is one expected-results.json allows and its close behavior is OK
 * (INFORMATIONAL for the informational cases). A listed case missing from the report fails (the run was
 * incomplete). A case the file does not list (cases of a newer testsuite) passes when it is OK,
 * INFORMATIONAL or UNIMPLEMENTED, and fails otherwise.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { EXPECTED_RESULTS_PATH, loadExpectedResults, type ExpectedResults } from './expected.ts';
import { compareCaseIds } from './harness.ts';

export interface CheckProblem {
  readonly agent: string;
  readonly id: string;
  /** What expected-results.json allows; empty for an unlisted case. */
  readonly allowed: readonly string[];
  /** The report's behavior, or null when the case is missing from the report. */
  readonly behavior: string | null;
  readonly behaviorClose: string | null;
  readonly problem: 'behavior' | 'close' | 'missing' | 'unlisted';
}

export interface CheckResult {
  readonly ok: boolean;
  readonly agents: readonly string[];
  /** Cases of the report that were checked (all agents together). */
  readonly checked: number;
  readonly problems: readonly CheckProblem[];
}

export interface CheckOptions {
  /** Only this agent of the report (default: every agent in it). */
  readonly agent?: string;
}

const UNLISTED_ALLOWED = new Set(['OK', 'INFORMATIONAL', 'UNIMPLEMENTED']);

function closeIsProper(behavior: string, behaviorClose: string | undefined): boolean {
  if (behaviorClose === 'OK') return true;
  return behaviorClose === 'INFORMATIONAL' && behavior === 'INFORMATIONAL';
}

/** Checks a parsed index.json against the expected results. Throws TypeError when it is not a report. */
export function checkReport(index: unknown, expected: ExpectedResults, options: CheckOptions = {}): CheckResult {
  if (typeof index !== 'object' || index === null || Array.isArray(index)) {
    throw new TypeError('not an Autobahn report: index.json must map agents to their case results');
  }
  const report = index as Record<string, unknown>;
  const agents = options.agent === undefined ? Object.keys(report).sort() : [options.agent];
  if (agents.length === 0) throw new TypeError('the report has no agent');
  const problems: CheckProblem[] = [];
  let checked = 0;
  for (const agent of agents) {
    const cases = report[agent];
    if (typeof cases !== 'object' || cases === null || Array.isArray(cases)) {
      throw new TypeError(`the report has no results for agent "${agent}"`);
    }
    const results = cases as Record<string, { behavior?: unknown; behaviorClose?: unknown } | undefined>;
    for (const [id, allowed] of expected.cases) {
      const entry = results[id];
      if (entry === undefined) problems.push({ agent, id, allowed, behavior: null, behaviorClose: null, problem: 'missing' });
    }
    for (const [id, entry] of Object.entries(results)) {
      checked++;
      const behavior = typeof entry?.behavior === 'string' ? entry.behavior : 'MISSING';
      const behaviorClose = typeof entry?.behaviorClose === 'string' ? entry.behaviorClose : undefined;
      const allowed = expected.cases.get(id);
      const base = { agent, id, allowed: allowed ?? [], behavior, behaviorClose: behaviorClose ?? null };
      if (allowed === undefined) {
        if (!UNLISTED_ALLOWED.has(behavior)) problems.push({ ...base, problem: 'unlisted' });
      } else if (!allowed.includes(behavior)) {
        problems.push({ ...base, problem: 'behavior' });
      } else if (!closeIsProper(behavior, behaviorClose)) {
        problems.push({ ...base, problem: 'close' });
      }
    }
  }
  problems.sort((a, b) => a.agent.localeCompare(b.agent) || compareCaseIds(a.id, b.id));
  return { ok: problems.length === 0, agents, checked, problems };
}

/** Reads `<dir>/index.json` (or the file itself when given one) and checks it. */
export function checkReportDir(path: string, expected: ExpectedResults = loadExpectedResults(), options: CheckOptions = {}): CheckResult {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'index.json') : path;
  if (!existsSync(file)) throw new TypeError(`no Autobahn report at ${file}`);
  return checkReport(JSON.parse(readFileSync(file, 'utf8')) as unknown, expected, options);
}

/** The lines `npm run autobahn:check` prints for a result. */
export function formatCheck(result: CheckResult): string[] {
  const lines: string[] = [];
  for (const p of result.problems) {
    const wanted = p.allowed.length === 0 ? 'not listed in expected-results.json' : `expected ${p.allowed.join(' or ')}`;
    const what =
      p.problem === 'missing'
        ? 'missing from the report'
        : p.problem === 'close'
          ? `${p.behavior} but close behavior ${p.behaviorClose ?? 'missing'}`
          : `${p.behavior} (close ${p.behaviorClose ?? '?'})`;
    lines.push(`  ${p.agent} ${p.id}: ${what}, ${wanted}`);
  }
  const agents = result.agents.join(', ');
  lines.push(
    result.ok
      ? `autobahn:check: ${result.checked} case result(s) of ${agents} are as autobahn/expected-results.json allows.`
      : `autobahn:check: ${result.problems.length} case(s) of ${agents} are not as autobahn/expected-results.json allows.`,
  );
  return lines;
}

/** The command: returns the exit code (0 all as expected, 1 regressions, 2 bad usage or report). */
export function main(argv: readonly string[]): number {
  const usage = 'usage: npm run autobahn:check -- <reports dir or index.json> [--agent NAME] [--expected FILE]';
  try {
    const { values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { agent: { type: 'string' }, expected: { type: 'string' } },
    });
    if (positionals.length !== 1) {
      console.error(usage);
      return 2;
    }
    const expected = loadExpectedResults(values.expected ?? EXPECTED_RESULTS_PATH);
    const result = checkReportDir(positionals[0]!, expected, values.agent === undefined ? {} : { agent: values.agent });
    const lines = formatCheck(result);
    (result.ok ? console.log : console.error)(lines.join('\n'));
    return result.ok ? 0 : 1;
  } catch (error) {
    console.error(`autobahn:check: ${error instanceof Error ? error.message : String(error)}\n${usage}`);
    return 2;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.exitCode = main(process.argv.slice(2));
}
