/**
 * `npm run bench`: runs the benchmark sections, prints their tables and writes their results as JSON.
 *
 *   npm run bench                       every section, full length
 *   npm run bench -- --quick            short samples (also BENCH_QUICK=1); micro finishes in < 60 s
 *   npm run bench -- --only=micro       only the named sections (comma-separated): micro, e2e, memory, deflate, client, fanout, http2
 *   npm run bench -- --filter=parse     only the groups whose title starts with one of these prefixes
 *   npm run bench -- --check            exit with status 1 when a section reports a missed target
 *
 * Each section writes bench/results/<section>-<ISO date>.json and bench/results/latest-<section>.json.
 * On a terminal, a status line on stderr shows the section, the step it runs and the time left
 * (bench/progress.ts; not under CI, nor with BENCH_PROGRESS=0). `node --import tsx bench/report.ts`
 * then rewrites the tables and charts of BENCHMARKS.md from the latest results.
 * To add a section (end-to-end echo, memory, ...), write bench/<name>.ts exporting a function and add an
 * entry to SECTIONS below; nothing else here changes.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runClient } from './client.ts';
import { runDeflate } from './deflate.ts';
import { runE2e } from './e2e.ts';
import { runFanout } from './fanout.ts';
import { formatGroup } from './harness.ts';
import { runHttp2 } from './http2.ts';
import { runMemory } from './memory.ts';
import { bufferutilInfo, formatTargets, runMicro } from './micro.bench.ts';
import { progress } from './progress.ts';

export interface SectionContext {
  readonly quick: boolean;
  /** Group-title prefixes from `--filter`; empty means everything. */
  readonly filter: readonly string[];
  /**
   * Prints a line (or a table) to stdout as results come in. On a terminal the progress line
   * (bench/progress.ts) is erased before and drawn again after it.
   */
  readonly print: (text: string) => void;
}

export interface SectionReport {
  /** Written to the JSON file as `results`. */
  readonly results: unknown;
  /** Number of performance targets the section checked and missed (for `--check`). */
  readonly missedTargets: number;
}

export interface Section {
  readonly name: string;
  readonly description: string;
  readonly run: (context: SectionContext) => SectionReport | Promise<SectionReport>;
}

export const SECTIONS: readonly Section[] = [
  {
    name: 'micro',
    description: 'protocol core beside ws: parse, encode, mask, UTF-8 validation',
    run(context) {
      const results = runMicro({
        quick: context.quick,
        filter: context.filter,
        onGroup: (group) => context.print(`${formatGroup(group)}\n`),
      });
      const targets = results.targets.filter((target) => !Number.isNaN(target.measured));
      if (targets.length > 0) context.print(`${formatTargets(targets)}\n`);
      return { results, missedTargets: targets.filter((target) => !target.pass).length };
    },
  },
  {
    name: 'e2e',
    description: 'echo over real sockets: rfc6455, ws with and without bufferutil, plain TCP (bench/e2e.ts)',
    async run(context) {
      const { results, missedTargets } = await runE2e({ quick: context.quick, filter: context.filter, print: context.print });
      return { results, missedTargets };
    },
  },
  {
    name: 'memory',
    description: 'idle connections: RSS per connection and handshakes/s, rfc6455 and ws (bench/memory.ts)',
    async run(context) {
      const { results, missedTargets } = await runMemory({ quick: context.quick, filter: context.filter, print: context.print });
      return { results, missedTargets };
    },
  },
  {
    name: 'deflate',
    description: 'permessage-deflate, rfc6455 and ws: idle memory after one message each way, compressed JSON echo (bench/deflate.ts)',
    async run(context) {
      const { results, missedTargets } = await runDeflate({ quick: context.quick, filter: context.filter, print: context.print });
      return { results, missedTargets };
    },
  },
  {
    name: 'client',
    description: "client throughput against one rfc6455 echo server: our client beside ws's (with and without bufferutil) and the raw load generator (bench/client.ts)",
    async run(context) {
      const { results, missedTargets } = await runClient({ quick: context.quick, filter: context.filter, print: context.print });
      return { results, missedTargets };
    },
  },
  {
    name: 'fanout',
    description: "one publisher, 1,000 subscribers: rfc6455's topics beside ws's broadcast loop and Bun's publish; memory of a subscription (bench/fanout.ts)",
    async run(context) {
      const { results, missedTargets } = await runFanout({ quick: context.quick, filter: context.filter, print: context.print });
      return { results, missedTargets };
    },
  },
  {
    name: 'http2',
    description:
      'WebSockets over HTTP/2 (RFC 8441) beside HTTP/1.1, both with TLS, one rfc6455 server: echo throughput of N streams on one session vs N TLS connections, handshake latency (bench/http2.ts)',
    async run(context) {
      const { results, missedTargets } = await runHttp2({ quick: context.quick, filter: context.filter, print: context.print });
      return { results, missedTargets };
    },
  },
];

/**
 * About how long each section takes (seconds) on the 2-core machine of BENCHMARKS.md, for the time
 * left the progress line shows before a section has finished a step; the duration in the section's
 * latest results file is used instead when that run was of the same mode and unfiltered.
 */
const TYPICAL_SECONDS: Readonly<Record<string, { readonly quick: number; readonly full: number }>> = {
  micro: { quick: 70, full: 200 },
  e2e: { quick: 75, full: 460 },
  memory: { quick: 60, full: 150 },
  deflate: { quick: 35, full: 75 },
  client: { quick: 45, full: 130 },
  http2: { quick: 20, full: 100 },
  fanout: { quick: 30, full: 90 },
};

/** The expected seconds of a section run (undefined under `--filter`: a part of it takes less). */
function expectedSeconds(name: string, args: Arguments, resultsDir: string): number | undefined {
  if (args.filter.length > 0) return undefined;
  const mode = args.quick ? 'quick' : 'full';
  try {
    const file = JSON.parse(readFileSync(join(resultsDir, `latest-${name}.json`), 'utf8')) as { seconds?: unknown; environment?: { mode?: unknown } };
    if (file.environment?.mode === mode && typeof file.seconds === 'number' && file.seconds > 0) return file.seconds;
  } catch {
    // No results yet, or unreadable: the typical duration below.
  }
  return TYPICAL_SECONDS[name]?.[mode];
}

interface Arguments {
  readonly quick: boolean;
  readonly only: readonly string[];
  readonly filter: readonly string[];
  readonly check: boolean;
}

const USAGE = `usage: node --import tsx bench/run.ts [--quick | --full] [--only=section,...] [--filter=prefix,...] [--check]
sections: ${SECTIONS.map((section) => `${section.name} (${section.description})`).join('; ')}`;

function parseArguments(argv: readonly string[]): Arguments {
  let quick = process.env['BENCH_QUICK'] === '1';
  let only: string[] = [];
  let filter: string[] = [];
  let check = false;
  const list = (value: string): string[] => value.split(',').map((item) => item.trim()).filter((item) => item !== '');
  for (const arg of argv) {
    if (arg === '--quick') quick = true;
    else if (arg === '--full') quick = false;
    else if (arg === '--check') check = true;
    else if (arg.startsWith('--only=')) only = list(arg.slice('--only='.length));
    else if (arg.startsWith('--filter=')) filter = list(arg.slice('--filter='.length));
    else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else {
      console.error(`unknown argument ${arg}\n${USAGE}`);
      process.exit(2);
    }
  }
  for (const name of only) {
    if (!SECTIONS.some((section) => section.name === name)) {
      console.error(`unknown section ${name}\n${USAGE}`);
      process.exit(2);
    }
  }
  return { quick, only, filter, check };
}

function environment(quick: boolean): Record<string, unknown> {
  const cpu = cpus();
  return {
    mode: quick ? 'quick' : 'full',
    node: process.version,
    v8: process.versions.v8,
    platform: process.platform,
    arch: process.arch,
    cpu: cpu[0]?.model ?? 'unknown',
    cpus: cpu.length,
    bufferutil: bufferutilInfo(),
    /** 1, 5 and 15 minute load averages when the run started: other load skews absolute figures. */
    loadAverage: loadavg().map((value) => Math.round(value * 100) / 100),
  };
}

/** Writes via a temporary file and a rename, so a reader never sees half a file. */
function writeJson(path: string, value: unknown): void {
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(temporary, path);
}

async function main(): Promise<void> {
  const args = parseArguments(process.argv.slice(2));
  const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results');
  mkdirSync(resultsDir, { recursive: true });
  const env = environment(args.quick);
  const date = new Date().toISOString();
  // Colons are not allowed in Windows file names.
  const stamp = date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z');
  console.log(`rfc6455 benchmarks (${env['mode']}): node ${process.version}, ${env['cpu']} x${env['cpus']}, ${process.platform}-${process.arch}`);
  const [load1 = 0] = loadavg();
  if (load1 > 0.5 * cpus().length) {
    console.log(`warning: load average ${load1.toFixed(2)} on ${cpus().length} CPUs: absolute figures are unreliable (ratios less so: samples are interleaved)`);
  }
  let missed = 0;
  const selected = SECTIONS.filter((section) => args.only.length === 0 || args.only.includes(section.name));
  const expected = selected.map((section) => expectedSeconds(section.name, args, resultsDir));
  for (const [index, section] of selected.entries()) {
    console.log(`\n== ${section.name}: ${section.description}\n`);
    const later = expected.slice(index + 1);
    progress.beginSection(section.name, {
      index,
      count: selected.length,
      expectedSeconds: expected[index],
      laterSeconds: later.every((value) => value !== undefined) ? later.reduce((sum, value) => sum + value, 0) : undefined,
    });
    const started = performance.now();
    // console.log goes through process.stdout.write, which progress.ts wraps while its line is shown:
    // the line is erased before the text and drawn again after it.
    const report = await section.run({ quick: args.quick, filter: args.filter, print: (text) => console.log(text) });
    progress.endSection();
    const seconds = (performance.now() - started) / 1000;
    missed += report.missedTargets;
    const document = { section: section.name, date, seconds, environment: env, filter: args.filter, results: report.results };
    const file = join(resultsDir, `${section.name}-${stamp}.json`);
    writeJson(file, document);
    // A filtered run is a partial picture: it does not replace the latest complete one.
    if (args.filter.length === 0) writeJson(join(resultsDir, `latest-${section.name}.json`), document);
    console.log(`${section.name}: ${seconds.toFixed(1)} s, results in ${file}`);
  }
  progress.stop();
  if (args.check && missed > 0) {
    console.error(`${missed} target(s) missed`);
    process.exitCode = 1;
  }
}

await main();
