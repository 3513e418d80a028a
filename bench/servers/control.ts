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
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ListeningMessage, StatsMessage } from './common.ts';

export type ServerKind = 'rfc6455' | 'ws' | 'ws-no-bufferutil' | 'tcp' | 'rfc6455-deflate' | 'ws-deflate' | 'rfc6455-tls';

export const SERVER_LABELS: Readonly<Record<ServerKind, string>> = {
  rfc6455: 'rfc6455',
  ws: 'ws + bufferutil',
  'ws-no-bufferutil': 'ws, no bufferutil',
  tcp: 'plain TCP echo',
  'rfc6455-deflate': 'rfc6455, deflate',
  'ws-deflate': 'ws + bufferutil, deflate',
  'rfc6455-tls': 'rfc6455, TLS (HTTP/1.1 + HTTP/2)',
};

/** The servers that offer permessage-deflate (RFC 7692): the same echo scripts, told by BENCH_DEFLATE=1. */
export const DEFLATE_SERVERS: ReadonlySet<ServerKind> = new Set(['rfc6455-deflate', 'ws-deflate']);

const here = dirname(fileURLToPath(import.meta.url));
const SCRIPTS: Readonly<Record<ServerKind, string>> = {
  rfc6455: 'rfc6455-echo',
  ws: 'ws-echo',
  'ws-no-bufferutil': 'ws-echo',
  tcp: 'tcp-echo',
  'rfc6455-deflate': 'rfc6455-echo',
  'ws-deflate': 'ws-echo',
  'rfc6455-tls': 'rfc6455-echo',
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

function scriptArgs(kind: ServerKind): string[] {
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
}

export interface ServerHandle {
  readonly kind: ServerKind;
  readonly label: string;
  readonly pid: number;
  readonly port: number;
  readonly info: Record<string, unknown>;
  /** Memory and cumulative CPU figures of the server process; `gc` collects garbage first. */
  stats(gc?: boolean): Promise<StatsMessage>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** CPU and event-loop figures of a server between two `stats()` snapshots. */
export interface ServerUsage {
  /** Process CPU time / wall time: 1.0 is one core busy (can exceed 1 with GC helper threads). */
  readonly cpu: number;
  /** Event-loop utilization of the server's JavaScript thread: 1.0 means never idle. */
  readonly elu: number;
}

export function usageBetween(a: StatsMessage, b: StatsMessage): ServerUsage {
  const wallUs = (b.now - a.now) * 1000;
  const cpuUs = b.cpuUser - a.cpuUser + (b.cpuSystem - a.cpuSystem);
  const active = b.eluActive - a.eluActive;
  const idle = b.eluIdle - a.eluIdle;
  return { cpu: wallUs > 0 ? cpuUs / wallUs : Number.NaN, elu: active + idle > 0 ? active / (active + idle) : Number.NaN };
}

/** The server's side of a load generator's measured window: a `stats()` snapshot at each edge. */
export interface WindowSnapshots {
  /** For the load generator's run: each edge asks the server for a snapshot. */
  readonly hooks: { readonly onWindowStart: () => void; readonly onWindowEnd: () => void };
  /** After the run: both snapshots (null where one failed, logged to stderr) and the usage between them (NaN without both). */
  readonly read: () => Promise<{ readonly before: StatsMessage | null; readonly after: StatsMessage | null; readonly usage: ServerUsage }>;
}

export function windowSnapshots(server: ServerHandle): WindowSnapshots {
  let before: Promise<StatsMessage | null> | undefined;
  let after: Promise<StatsMessage | null> | undefined;
  const snapshot = (): Promise<StatsMessage | null> =>
    server.stats().catch((error: unknown) => {
      process.stderr.write(`stats of the ${server.kind} server: ${error instanceof Error ? error.message : String(error)}\n`);
      return null;
    });
  return {
    hooks: {
      onWindowStart: () => {
        before = snapshot();
      },
      onWindowEnd: () => {
        after = snapshot();
      },
    },
    read: async () => {
      const first = (await before) ?? null;
      const second = (await after) ?? null;
      return { before: first, after: second, usage: first !== null && second !== null ? usageBetween(first, second) : { cpu: Number.NaN, elu: Number.NaN } };
    },
  };
}

export async function startServer(kind: ServerKind, options: StartOptions = {}): Promise<ServerHandle> {
  const nodeArgs = ['--expose-gc'];
  if (options.cpuProfileDir !== undefined) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`);
  nodeArgs.push(...scriptArgs(kind));
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
  // taskset execs node in its own place, so the PID stays node's.
  const command = options.cpuList === undefined ? [process.execPath, ...nodeArgs] : ['taskset', '-c', options.cpuList, process.execPath, ...nodeArgs];
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
  return makeHandle(kind, child, pid, { ...listening, info: { ...listening.info, runtime: serverRuntime() } }, exited);
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
