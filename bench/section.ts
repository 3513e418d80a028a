/**
 * What the end-to-end sections (bench/e2e.ts, bench/memory.ts, bench/deflate.ts) share besides the
 * load generators: their BENCH_* overrides, the load average, and the rounds of an echo comparison.
 */
import { loadavg } from 'node:os';
import { SERVER_LABELS, startServer, type ServerHandle, type ServerKind } from './servers/control.ts';

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
