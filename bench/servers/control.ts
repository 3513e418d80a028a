/**
 * Starts and stops the benchmark echo servers as child processes, one at a time, by PID.
 *
 * The servers run as plain JavaScript, compiled by `tsc` (bench/servers/tsconfig.build.json, into
 * bench/.build) the way `npm run build` compiles the library for users, not through tsx: tsx runs
 * esbuild with `keepNames`, which wraps every class-field arrow function in `__name(...)`, a
 * `defineProperty` that turns each such closure into a dictionary-mode object (about 250 bytes more
 * per closure, per connection) and adds a call per closure created. `ws` is plain JavaScript in
 * node_modules, so only a tsx-run rfc6455 would pay that. BENCH_SERVER_RUNTIME=tsx runs the
 * TypeScript sources under tsx instead, to see the difference.
 *
 * Each server runs in its own `node` process behind `/bin/sh`,
 * which first raises the soft limit on open files to the hard limit (10,000 idle connections need
 * 10,000 descriptors) and then `exec`s node, so the PID is node's. The IPC channel carries the port
 * and the memory/CPU figures (see common.ts). `stop()` sends SIGTERM, then SIGKILL to that PID after a
 * grace period; a server also exits by itself when this process goes away.
 *
 * The `bun` server is Bun's native WebSocket server (bench/servers/bun-echo.ts), run by the `bun`
 * binary that the devDependency `@oven/bun-linux-x64` ships (or BENCH_BUN=/path/to/bun), the same way
 * and with the same IPC. `unavailable('bun')` says why it cannot run here, and how to get it.
 *
 * A server's CPU time and resident memory are read by this process from /proc (the schedstat of each
 * of its threads, and /proc/<pid>/status: `ServerHandle.cpuTimeUs()`, `rssBytes()`): the same method
 * for every server, Node or Bun, taken at the very moment the window starts or ends rather than
 * whenever the busy server gets to answer an IPC request.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { ListeningMessage, StatsMessage } from './common.ts';

export type ServerKind = 'rfc6455' | 'ws' | 'ws-no-bufferutil' | 'tcp' | 'bun' | 'rfc6455-deflate' | 'ws-deflate' | 'rfc6455-tls' | 'rfc6455-workers';

export const SERVER_LABELS: Readonly<Record<ServerKind, string>> = {
  rfc6455: 'rfc6455',
  ws: 'ws + bufferutil',
  'ws-no-bufferutil': 'ws, no bufferutil',
  tcp: 'plain TCP echo',
  bun: 'Bun',
  'rfc6455-deflate': 'rfc6455, deflate',
  'ws-deflate': 'ws + bufferutil, deflate',
  'rfc6455-tls': 'rfc6455, TLS (HTTP/1.1 + HTTP/2)',
  'rfc6455-workers': 'rfc6455, 2 workers',
};

/** The servers that offer permessage-deflate (RFC 7692): the same echo scripts, told by BENCH_DEFLATE=1. */
export const DEFLATE_SERVERS: ReadonlySet<ServerKind> = new Set(['rfc6455-deflate', 'ws-deflate']);

const here = dirname(fileURLToPath(import.meta.url));
const SCRIPTS: Readonly<Record<ServerKind, string>> = {
  rfc6455: 'rfc6455-echo',
  ws: 'ws-echo',
  'ws-no-bufferutil': 'ws-echo',
  tcp: 'tcp-echo',
  bun: 'bun-echo',
  'rfc6455-deflate': 'rfc6455-echo',
  'ws-deflate': 'ws-echo',
  'rfc6455-tls': 'rfc6455-echo',
  'rfc6455-workers': 'rfc6455-echo',
};

/**
 * The key and certificate of the TLS server (`rfc6455-tls`): the tests' self-signed fixture (RSA 2048,
 * CN localhost, SAN 127.0.0.1), read, never written. Clients trust `cert` as their CA.
 */
export const TLS_FIXTURES = {
  key: join(here, '..', '..', 'test', 'fixtures', 'key.pem'),
  cert: join(here, '..', '..', 'test', 'fixtures', 'cert.pem'),
} as const;

/** Where tsc puts the compiled servers and library (bench/.build, ignored by git). */
export const BUILD_DIR = join(here, '..', '.build');

export type ServerRuntime = 'js' | 'tsx';

export function serverRuntime(): ServerRuntime {
  const value = process.env['BENCH_SERVER_RUNTIME'] ?? 'js';
  if (value !== 'js' && value !== 'tsx') throw new RangeError(`BENCH_SERVER_RUNTIME=${value}: expected js or tsx`);
  return value;
}

let built = false;

/**
 * Compiles bench/servers/*.ts, the client and http2 sections' children (bench/client-load.ts,
 * bench/http2-load.ts) and the library they import to bench/.build (once per process, about 2 s).
 * Type errors do not stop it (`--noCheck`: `npm test` type-checks); a failed emit throws.
 */
export function buildServers(): void {
  if (built || serverRuntime() === 'tsx') return;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.build.json'), '--noCheck'], { encoding: 'utf8', timeout: 120_000 });
  const entry = join(BUILD_DIR, 'bench', 'servers', 'rfc6455-echo.js');
  if (result.status !== 0 || !existsSync(entry)) {
    throw new Error(`compiling the benchmark servers failed (status ${result.status}):\n${result.stdout}${result.stderr}`);
  }
  writeFileSync(join(BUILD_DIR, '.gitignore'), '# Compiled benchmark servers (bench/servers/control.ts).\n*\n');
  built = true;
}

/** The commit the servers were built from, and whether src/ had uncommitted changes (read-only git). */
export function sourceRevision(): { commit: string | null; srcModified: boolean | null } {
  const root = join(here, '..', '..');
  const git = (args: string[]): string | null => {
    const result = spawnSync('git', args, { cwd: root, encoding: 'utf8', timeout: 10_000 });
    return result.status === 0 ? result.stdout.trim() : null;
  };
  const commit = git(['rev-parse', '--short', 'HEAD']);
  const status = git(['status', '--porcelain', '--', 'src']);
  return { commit, srcModified: status === null ? null : status !== '' };
}

/** The package that ships the `bun` binary (a devDependency; Linux x64 with glibc only). */
export const BUN_PACKAGE = '@oven/bun-linux-x64';

let bunFound: { readonly path: string; readonly version: string } | { readonly missing: string } | undefined;

/**
 * The `bun` binary: BENCH_BUN when set, else the one in the devDependency BUN_PACKAGE; checked once by
 * running `bun --version`. `missing` says why there is none and how to get one.
 */
export function bunBinary(): { readonly path: string; readonly version: string } | { readonly missing: string } {
  if (bunFound !== undefined) return bunFound;
  const howTo = `\`npm install\` (the devDependency ${BUN_PACKAGE}) on Linux x64, or BENCH_BUN=/path/to/bun elsewhere`;
  const fromEnv = process.env['BENCH_BUN'];
  let path: string;
  if (fromEnv !== undefined && fromEnv !== '') {
    path = fromEnv;
  } else if (process.platform !== 'linux' || process.arch !== 'x64') {
    return (bunFound = { missing: `${BUN_PACKAGE} ships a Linux x64 binary, and this is ${process.platform}-${process.arch}: set BENCH_BUN=/path/to/bun` });
  } else {
    try {
      path = join(dirname(createRequire(import.meta.url).resolve(`${BUN_PACKAGE}/package.json`)), 'bin', 'bun');
    } catch {
      return (bunFound = { missing: `${BUN_PACKAGE} is not installed: ${howTo}` });
    }
  }
  if (!existsSync(path)) return (bunFound = { missing: `no bun binary at ${path}: ${howTo}` });
  const result = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0) {
    const why = result.error?.message ?? (result.stderr.trim() || `exit status ${result.status}`);
    return (bunFound = { missing: `${path} does not run here (${why}): ${howTo}` });
  }
  return (bunFound = { path, version: result.stdout.trim() });
}

/** Why a server cannot run on this machine (with how to fix it), or null when it can. */
export function unavailable(kind: ServerKind): string | null {
  if (kind !== 'bun') return null;
  const bun = bunBinary();
  return 'missing' in bun ? `${SERVER_LABELS.bun}: ${bun.missing}` : null;
}

// ------------------------------------------------------------------------------------------ /proc

let clockTicks: number | undefined;

/** USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on Linux x86 and ARM). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 });
    const value = Number(result.stdout?.trim());
    clockTicks = result.status === 0 && Number.isInteger(value) && value > 0 ? value : 100;
  }
  return clockTicks;
}

/**
 * CPU time of a process, all its threads, in microseconds: the sum of the time on CPU of each of its
 * threads (the first field of /proc/<pid>/task/<tid>/schedstat, in nanoseconds), precise enough for a
 * 300 ms window. A thread that exits takes its time with it; the servers' threads (Node's V8 and libuv
 * threads, Bun's) live as long as the process. Where schedstat cannot be read, utime + stime of
 * /proc/<pid>/stat (every thread, dead ones included, in steps of 10 ms at USER_HZ = 100). NaN when
 * neither can be read (not Linux, or the process is gone).
 */
export function processCpuTimeUs(pid: number): number {
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const schedstat = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1');
      ns += Number(schedstat.slice(0, schedstat.indexOf(' ')));
    }
    if (Number.isFinite(ns) && ns > 0) return ns / 1000;
  } catch {
    // A thread gone between readdir and read, or no schedstat: fall back to the process's ticks.
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15 (proc(5)).
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks * 1e6) / ticksPerSecond();
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU time of a process and of its descendants (the workers of a `node:cluster` server), in
 * microseconds: processCpuTimeUs of each, found through /proc/<pid>/task/<tid>/children.
 */
export function processTreeCpuTimeUs(pid: number): number {
  let total = processCpuTimeUs(pid);
  let children: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const list = readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').trim();
      if (list !== '') children = children.concat(list.split(' ').map(Number));
    }
  } catch {
    return total;
  }
  for (const child of children) {
    const time = processTreeCpuTimeUs(child);
    if (Number.isFinite(time)) total += time;
  }
  return total;
}

/** Resident set size of a process in bytes (VmRSS of /proc/<pid>/status), NaN when it cannot be read. */
export function processRssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return match === null ? Number.NaN : Number(match[1]) * 1024;
  } catch {
    return Number.NaN;
  }
}

function scriptArgs(kind: ServerKind): string[] {
  if (kind === 'bun') return [join(here, `${SCRIPTS[kind]}.ts`)];
  if (serverRuntime() === 'tsx') return ['--import', 'tsx', join(here, `${SCRIPTS[kind]}.ts`)];
  buildServers();
  return [join(BUILD_DIR, 'bench', 'servers', `${SCRIPTS[kind]}.js`)];
}

export interface StartOptions {
  /** Write a V8 CPU profile (`--cpu-prof`) into this directory when the server exits. */
  readonly cpuProfileDir?: string;
  /** Give up if the server does not listen within this time. Default 20 s. */
  readonly startTimeoutMs?: number;
  /** The server exits by itself after this long. Default 15 minutes. */
  readonly lifetimeMs?: number;
  /**
   * Run the server on these CPUs only (`taskset -c`, e.g. `0`), so a load generator pinned elsewhere
   * never takes its core. Unset: wherever the scheduler puts it.
   */
  readonly cpuList?: string;
  /** More environment for the server (e.g. BENCH_FANOUT=1), over the benchmark's own. */
  readonly env?: Readonly<Record<string, string>>;
}

export interface ServerHandle {
  readonly kind: ServerKind;
  readonly label: string;
  readonly pid: number;
  readonly port: number;
  readonly info: Record<string, unknown>;
  /** Memory and cumulative CPU figures of the server process; `gc` collects garbage first. */
  stats(gc?: boolean): Promise<StatsMessage>;
  /** CPU time of the server process so far (every thread), in µs, from /proc (NaN if unreadable). */
  cpuTimeUs(): number;
  /** Resident set size of the server process now, in bytes, from /proc (NaN if unreadable). */
  rssBytes(): number;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** CPU and event-loop figures of a server between two `stats()` snapshots. */
export interface ServerUsage {
  /** Process CPU time / wall time: 1.0 is one core busy (can exceed 1 with GC helper threads). */
  readonly cpu: number;
  /** Event-loop utilization of the server's JavaScript thread: 1.0 means never idle (NaN under Bun). */
  readonly elu: number;
}

export function usageBetween(a: StatsMessage, b: StatsMessage): ServerUsage {
  const wallUs = (b.now - a.now) * 1000;
  const cpuUs = b.cpuUser - a.cpuUser + (b.cpuSystem - a.cpuSystem);
  const active = b.eluActive - a.eluActive;
  const idle = b.eluIdle - a.eluIdle;
  return { cpu: wallUs > 0 ? cpuUs / wallUs : Number.NaN, elu: active + idle > 0 ? active / (active + idle) : Number.NaN };
}

/**
 * The server's side of a load generator's measured window: at each edge, its CPU time read from /proc
 * at once, and a `stats()` snapshot over IPC (for the event-loop figures, which only the server knows).
 */
export interface WindowSnapshots {
  /** For the load generator's run: each edge reads /proc and asks the server for a snapshot. */
  readonly hooks: { readonly onWindowStart: () => void; readonly onWindowEnd: () => void };
  /**
   * After the run: both snapshots (null where one failed, logged to stderr) and the usage between them:
   * `cpu` from /proc (from the snapshots where /proc cannot be read), `elu` from the snapshots (NaN
   * without both, and under Bun).
   */
  readonly read: () => Promise<{ readonly before: StatsMessage | null; readonly after: StatsMessage | null; readonly usage: ServerUsage }>;
}

export function windowSnapshots(server: ServerHandle): WindowSnapshots {
  let before: Promise<StatsMessage | null> | undefined;
  let after: Promise<StatsMessage | null> | undefined;
  let cpuBefore = { cpuUs: Number.NaN, now: Number.NaN };
  let cpuAfter = { cpuUs: Number.NaN, now: Number.NaN };
  const snapshot = (): Promise<StatsMessage | null> =>
    server.stats().catch((error: unknown) => {
      process.stderr.write(`stats of the ${server.kind} server: ${error instanceof Error ? error.message : String(error)}\n`);
      return null;
    });
  return {
    hooks: {
      onWindowStart: () => {
        cpuBefore = { cpuUs: server.cpuTimeUs(), now: performance.now() };
        before = snapshot();
      },
      onWindowEnd: () => {
        cpuAfter = { cpuUs: server.cpuTimeUs(), now: performance.now() };
        after = snapshot();
      },
    },
    read: async () => {
      const first = (await before) ?? null;
      const second = (await after) ?? null;
      const fromStats = first !== null && second !== null ? usageBetween(first, second) : { cpu: Number.NaN, elu: Number.NaN };
      const wallUs = (cpuAfter.now - cpuBefore.now) * 1000;
      const fromProc = wallUs > 0 ? (cpuAfter.cpuUs - cpuBefore.cpuUs) / wallUs : Number.NaN;
      return { before: first, after: second, usage: { cpu: Number.isFinite(fromProc) ? fromProc : fromStats.cpu, elu: fromStats.elu } };
    },
  };
}

export async function startServer(kind: ServerKind, options: StartOptions = {}): Promise<ServerHandle> {
  let runtime: string = process.execPath;
  const runtimeArgs: string[] = [];
  if (kind === 'bun') {
    const bun = bunBinary();
    if ('missing' in bun) throw new Error(bun.missing);
    if (options.cpuProfileDir !== undefined) throw new Error('no V8 CPU profile for Bun (it runs JavaScriptCore)');
    runtime = bun.path;
  } else {
    runtimeArgs.push('--expose-gc');
    if (options.cpuProfileDir !== undefined) runtimeArgs.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`);
  }
  runtimeArgs.push(...scriptArgs(kind));
  const env: NodeJS.ProcessEnv = { ...process.env, BENCH_SERVER_LIFETIME_MS: String(options.lifetimeMs ?? 15 * 60 * 1000) };
  delete env['BENCH_SERVER_PORT'];
  if (kind === 'ws-no-bufferutil') env['WS_NO_BUFFER_UTIL'] = '1';
  else delete env['WS_NO_BUFFER_UTIL'];
  if (DEFLATE_SERVERS.has(kind)) env['BENCH_DEFLATE'] = '1';
  else delete env['BENCH_DEFLATE'];
  if (kind === 'rfc6455-tls') {
    env['BENCH_TLS_KEY'] = TLS_FIXTURES.key;
    env['BENCH_TLS_CERT'] = TLS_FIXTURES.cert;
  } else {
    delete env['BENCH_TLS_KEY'];
    delete env['BENCH_TLS_CERT'];
  }
  delete env['BENCH_FANOUT'];
  // `rfc6455-workers`: the same echo under runWorkers(), two worker processes on one port (node:cluster).
  if (kind === 'rfc6455-workers') env['BENCH_WORKERS'] = '2';
  else delete env['BENCH_WORKERS'];
  Object.assign(env, options.env);
  // taskset execs node (or bun) in its own place, so the PID stays the runtime's.
  const command = options.cpuList === undefined ? [runtime, ...runtimeArgs] : ['taskset', '-c', options.cpuList, runtime, ...runtimeArgs];
  // `exec` keeps the PID and the IPC descriptor; the ulimit only raises the soft limit up to the hard one.
  const child = spawn('/bin/sh', ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"', ...command], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env,
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start the ${kind} server`);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const listening = await new Promise<ListeningMessage>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      child.kill('SIGKILL');
      reject(new Error(`the ${kind} server did not listen within ${options.startTimeoutMs ?? 20_000} ms`));
    }, options.startTimeoutMs ?? 20_000);
    const onMessage = (message: unknown): void => {
      if ((message as Partial<ListeningMessage>).type !== 'listening') return;
      cleanup();
      resolve(message as ListeningMessage);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      cleanup();
      reject(new Error(`the ${kind} server exited before listening (code ${code}, signal ${signal})`));
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
  // Bun's server names its runtime itself (`bun <version>`); the Node servers run as serverRuntime() says.
  const runtimeInfo = kind === 'bun' ? {} : { runtime: serverRuntime() };
  return makeHandle(kind, child, pid, { ...listening, info: { ...listening.info, ...runtimeInfo } }, exited);
}

function makeHandle(kind: ServerKind, child: ChildProcess, pid: number, listening: ListeningMessage, exited: Promise<void>): ServerHandle {
  let nextId = 1;
  let running = true;
  void exited.then(() => {
    running = false;
  });
  return {
    kind,
    label: SERVER_LABELS[kind],
    pid,
    port: listening.port,
    info: listening.info,
    cpuTimeUs: () => processTreeCpuTimeUs(pid),
    rssBytes: () => processRssBytes(pid),
    stats(gc = false) {
      if (!running) return Promise.reject(new Error(`the ${kind} server (pid ${pid}) has exited`));
      const id = nextId++;
      return new Promise<StatsMessage>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.off('message', onMessage);
          reject(new Error(`the ${kind} server did not answer a stats request within 10 s`));
        }, 10_000);
        const onMessage = (message: unknown): void => {
          const stats = message as Partial<StatsMessage>;
          if (stats.type !== 'stats' || stats.id !== id) return;
          clearTimeout(timer);
          child.off('message', onMessage);
          resolve(stats as StatsMessage);
        };
        child.on('message', onMessage);
        child.send({ type: 'stats', id, gc });
      });
    },
    async stop(graceMs = 5000) {
      if (!running) return;
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // Already gone.
      }
      let timer: NodeJS.Timeout | undefined;
      const forced = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
          resolve();
        }, graceMs);
      });
      await Promise.race([exited, forced]);
      clearTimeout(timer);
      await exited;
      if (child.connected) child.disconnect();
    },
  };
}
