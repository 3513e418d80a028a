/**
 * CPU profile of an echo server under one end-to-end scenario: starts the server with `--cpu-prof`,
 * runs the scenario with the load generator, stops the server (which writes the profile), and prints
 * the functions with the most self time, and the time by category (the library, ws, Node internals,
 * GC). The .cpuprofile file stays in bench/results/profiles/ (ignored by git) for Chrome DevTools.
 *
 *   node --import tsx bench/profile.ts [--server=rfc6455] [--scenario='echo 16 B'] [--duration=5] [--top=25]
 *   node --import tsx bench/profile.ts --summarize=path/to/file.cpuprofile
 */
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { SCENARIOS } from './e2e.ts';
import { formatMb, formatMicros, formatRate, formatTable } from './format.ts';
import { runLoad } from './loadgen.ts';
import { SERVER_LABELS, startServer, type ServerKind } from './servers/control.ts';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ProfileEntry {
  readonly name: string;
  readonly location: string;
  readonly category: string;
  readonly selfMs: number;
  /** Share of the busy (non-idle) time. */
  readonly share: number;
}

function categoryOf(url: string, name: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)') return 'idle';
  if (name === '(program)') return 'V8/native (program)';
  if (url.includes('/node_modules/ws/')) return 'ws';
  if (url.includes('/node_modules/')) return 'other packages';
  if (url.includes('/src/')) return 'rfc6455 library';
  if (url.includes('/bench/')) return 'benchmark server script';
  if (url.startsWith('node:')) return 'Node internals';
  if (url === '') return name.startsWith('(') ? name : 'native (no script)';
  return 'other';
}

/** Self time per function (samples × their time deltas), busiest first, idle excluded from shares. */
export function summarizeProfile(profile: CpuProfile): { entries: ProfileEntry[]; categories: Map<string, number>; busyMs: number; totalMs: number } {
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    // Chrome DevTools' convention: a sample's time is the delta to the next sample.
    const delta = profile.timeDeltas[i + 1] ?? 0;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, delta));
  }
  const byFunction = new Map<string, { name: string; location: string; category: string; us: number }>();
  const categories = new Map<string, number>();
  let busyUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName === '' ? '(anonymous)' : functionName;
    const category = categoryOf(url, name);
    totalUs += us;
    if (category !== 'idle') busyUs += us;
    categories.set(category, (categories.get(category) ?? 0) + us / 1000);
    const location = url === '' ? '' : `${basename(url.replace(/^file:\/\//, ''))}:${lineNumber + 1}`;
    const key = `${name} ${location}`;
    const entry = byFunction.get(key);
    if (entry === undefined) byFunction.set(key, { name, location, category, us });
    else entry.us += us;
  }
  const entries = [...byFunction.values()]
    .filter((entry) => entry.category !== 'idle')
    .map((entry) => ({ name: entry.name, location: entry.location, category: entry.category, selfMs: entry.us / 1000, share: entry.us / busyUs }))
    .sort((a, b) => b.selfMs - a.selfMs);
  return { entries, categories, busyMs: busyUs / 1000, totalMs: totalUs / 1000 };
}

export function formatProfile(file: string, top: number): string {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const { entries, categories, busyMs, totalMs } = summarizeProfile(profile);
  const lines = [`${file}: ${(totalMs / 1000).toFixed(1)} s sampled, ${(busyMs / 1000).toFixed(1)} s busy (not idle)`];
  lines.push('by category (share of busy time)');
  lines.push(
    formatTable(
      ['category', 'self ms', 'share'],
      [...categories]
        .filter(([category]) => category !== 'idle')
        .sort((a, b) => b[1] - a[1])
        .map(([category, ms]) => [category, ms.toFixed(0), `${((100 * ms) / busyMs).toFixed(1)}%`]),
    ),
  );
  lines.push(`top ${top} functions by self time`);
  lines.push(
    formatTable(
      ['function', 'where', 'category', 'self ms', 'share'],
      entries.slice(0, top).map((entry) => [entry.name, entry.location, entry.category, entry.selfMs.toFixed(0), `${(100 * entry.share).toFixed(1)}%`]),
    ),
  );
  return lines.join('\n');
}

function newestProfile(dir: string, since: number): string | null {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).mtimeMs >= since)
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return files[0] ?? null;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      server: { type: 'string', default: 'rfc6455' },
      scenario: { type: 'string', default: 'echo 16 B' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      top: { type: 'string', default: '25' },
      summarize: { type: 'string' },
    },
  });
  const top = Number(values.top);
  if (values.summarize !== undefined) {
    console.log(formatProfile(values.summarize, top));
    return;
  }
  const kind = values.server as ServerKind;
  if (!(kind in SERVER_LABELS)) throw new RangeError(`unknown server ${kind}`);
  const scenario = SCENARIOS.find((candidate) => candidate.title.startsWith(values.scenario));
  if (scenario === undefined) throw new RangeError(`no scenario starts with ${values.scenario}: ${SCENARIOS.map((s) => s.title).join('; ')}`);
  const dir = join(dirname(fileURLToPath(import.meta.url)), 'results', 'profiles');
  mkdirSync(dir, { recursive: true });
  const started = Date.now();
  const server = await startServer(kind, { cpuProfileDir: dir });
  try {
    const result = await runLoad({
      port: server.port,
      protocol: kind === 'tcp' ? 'tcp' : 'websocket',
      size: scenario.size,
      connections: scenario.connections,
      inFlight: scenario.inFlight,
      warmupMs: Number(values.warmup) * 1000,
      durationMs: Number(values.duration) * 1000,
    });
    console.log(
      `${SERVER_LABELS[kind]}, ${scenario.title}: ${formatRate(result.messagesPerSec)} msgs/s, ${formatMb(result.mbPerSec)} MB/s, ` +
        `p50 ${formatMicros(result.latencyUs.p50)}, p99 ${formatMicros(result.latencyUs.p99)}, load generator ELU ${result.workerElu.map((elu) => elu.toFixed(2)).join('/')}` +
        ' (with the profiler on: slower than unprofiled)',
    );
  } finally {
    await server.stop(15_000);
  }
  const file = newestProfile(dir, started);
  if (file === null) throw new Error(`no .cpuprofile written in ${dir}`);
  console.log(formatProfile(file, top));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
