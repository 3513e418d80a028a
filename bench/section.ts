/**
 * What the end-to-end sections (bench/e2e.ts, bench/memory.ts, bench/deflate.ts) share besides the
 * load generators: their BENCH_* overrides, the load average, and the rounds of an echo comparison.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILD_DIR, buildServers, SERVER_LABELS, serverRuntime, startServer, type ServerHandle, type ServerKind } from './servers/control.ts';

/** How bench/run.ts, or the section's own command line, runs a section. */
export interface SectionRun {
  readonly quick: boolean;
  /** Group-title prefixes from `--filter`; empty or absent means everything. */
  readonly filter?: readonly string[];
  /** Tables and notes (stdout). */
  readonly print: (text: string) => void;
  /** Progress lines (one per measurement); default stderr. */
  readonly progress?: (text: string) => void;
}

/** The 1, 5 and 15 minute load averages, to two decimals. */
export function roundedLoad(): number[] {
  return loadavg().map((value) => Math.round(value * 100) / 100);
}

/** A BENCH_* override: undefined when unset or empty; a RangeError unless a non-negative number. */
export function envNumber(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0) throw new RangeError(`${name}=${value} is not a non-negative number`);
  return number;
}

/** One measurement of an echo comparison: one scenario against one server in one round. */
export interface RoundRecord {
  readonly round: number;
  readonly server: ServerKind;
  /** The scenario's title. */
  readonly scenario: string;
  readonly errors: readonly string[];
}

export interface RoundsPlan<Scenario extends { readonly title: string }, Run extends RoundRecord> {
  readonly rounds: number;
  readonly servers: readonly ServerKind[];
  readonly scenarios: readonly Scenario[];
  /** Each server once it listens (to record its info). */
  readonly started: (server: ServerHandle) => void;
  readonly measure: (server: ServerHandle, scenario: Scenario, round: number) => Promise<Run>;
  /** The record of a measurement that threw, or that a server which failed could not run. */
  readonly failed: (round: number, server: ServerKind, scenario: Scenario, error: unknown) => Run;
  /** Each record as it comes (a progress line). */
  readonly measured: (record: Run) => void;
  readonly progress: (text: string) => void;
}

/**
 * The rounds of an echo comparison: in each, every server in turn (the order rotated from round to
 * round) is started, runs every scenario, and is stopped, so ratios can be taken within a round. Every
 * round, server and scenario gets one record, a failed one where the measurement or the server failed.
 */
export async function echoRounds<Scenario extends { readonly title: string }, Run extends RoundRecord>(
  plan: RoundsPlan<Scenario, Run>,
): Promise<Run[]> {
  const { servers, scenarios } = plan;
  const records: Run[] = [];
  for (let round = 0; round < plan.rounds && scenarios.length > 0; round++) {
    const order = servers.map((_server, index) => servers[(index + round) % servers.length]!);
    for (const kind of order) {
      let server: ServerHandle | null = null;
      try {
        server = await startServer(kind);
        plan.started(server);
        for (const scenario of scenarios) {
          let record: Run;
          try {
            record = await plan.measure(server, scenario, round);
          } catch (error) {
            record = plan.failed(round, kind, scenario, error);
          }
          records.push(record);
          plan.measured(record);
        }
      } catch (error) {
        for (const scenario of scenarios) {
          if (!records.some((record) => record.round === round && record.server === kind && record.scenario === scenario.title)) {
            records.push(plan.failed(round, kind, scenario, error));
          }
        }
        plan.progress(`  round ${round + 1}: ${SERVER_LABELS[kind]} failed: ${error instanceof Error ? error.message : String(error)}`);
      } finally {
        await server?.stop();
      }
    }
  }
  return records;
}

/**
 * A section file's own command line: `node --import tsx bench/<name>.ts [--quick] [--filter=prefix,...]`
 * prints its tables (no JSON file); `--markdown[=file]` prints a results file (default
 * bench/results/latest-<name>.json) as Markdown.
 */
export async function sectionMain<R>(
  name: string,
  run: (options: SectionRun) => unknown,
  markdown: (results: R) => string,
): Promise<void> {
  const args = process.argv.slice(2);
  const markdownArg = args.find((arg) => arg === '--markdown' || arg.startsWith('--markdown='));
  if (markdownArg !== undefined) {
    const path = markdownArg.includes('=')
      ? markdownArg.slice('--markdown='.length)
      : new URL(`./results/latest-${name}.json`, import.meta.url);
    console.log(markdown(JSON.parse(readFileSync(path, 'utf8')) as R));
    return;
  }
  const quick = args.includes('--quick') || process.env['BENCH_QUICK'] === '1';
  const filterArg = args.find((arg) => arg.startsWith('--filter='));
  const filter = filterArg === undefined ? [] : filterArg.slice('--filter='.length).split(',');
  await run({ quick, filter, print: (text) => console.log(text) });
}

/**
 * The node arguments that start a load generator, `bench/<name>.ts`: through tsx, or compiled like the
 * servers (see serverRuntime).
 */
export function loadScript(name: string): string[] {
  if (serverRuntime() === 'tsx') return ['--import', 'tsx', fileURLToPath(new URL(`./${name}.ts`, import.meta.url))];
  buildServers();
  return [join(BUILD_DIR, 'bench', `${name}.js`)];
}
