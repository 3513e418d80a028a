/**
 * The worker-thread plumbing of the load generators, bench/loadgen.ts (raw sockets) and
 * bench/deflate-load.ts (the ws client with permessage-deflate): each runs its connections in worker
 * threads of the benchmark process, and a coordinator on the main thread drives them with the same
 * few messages.
 *
 *   coordinator → worker   'go' (start the traffic), 'close' (drop every connection, then end)
 *   worker → coordinator   'opened' (every connection open or failed), 'window' (the edges of the
 *                          measured window: the coordinator reads its CPU time there), 'result',
 *                          'closed', 'fatal'
 *
 * Worker side: `serveWorker` (bootstrap, deadline, message loop), `openConcurrently`, `measureTraffic`.
 * Coordinator side: `WorkerGroup`.
 */
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

/** Errors a worker reports by their text; the rest are only counted. */
export const MAX_REPORTED_ERRORS = 5;

type ToWorker = { readonly type: 'go' } | { readonly type: 'close' };

/** The edges of the measured window, as a worker sees them. */
interface WindowEdge {
  readonly type: 'window';
  readonly phase: 'start' | 'end';
}

interface WorkerFatal {
  readonly type: 'fatal';
  readonly message: string;
}

/** What every worker may send besides its 'opened' and 'result' reports. */
type WorkerSignal = WindowEdge | WorkerFatal | { readonly type: 'closed' };

/** What the caller may do at the edges of the measured window (e.g. read the server's CPU time). */
export interface WindowHooks {
  readonly onWindowStart?: () => unknown;
  readonly onWindowEnd?: () => unknown;
}

// ------------------------------------------------------------------------------------------ worker side

/** Sends a message to the coordinator. */
export function post<Message extends { readonly type: string }>(message: Message, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(message, transfer);
}

/** What a worker does for the coordinator's messages. */
export interface WorkerRole {
  /** Opens every connection; its report goes to the coordinator. */
  readonly open: () => Promise<{ readonly type: 'opened' }>;
  /** 'go': the traffic, which posts its own 'result'. */
  readonly go: () => void;
  /** 'close': drops every connection. */
  readonly close: () => void;
}

/**
 * Runs `start(config)` when this thread is a worker started with a `workerData` of this `kind`, and
 * answers the coordinator's messages. The worker posts 'fatal' and exits once `deadlineMs` have passed,
 * whatever happens; `name` says which worker in that message.
 */
export function serveWorker<Config extends { readonly kind: string; readonly deadlineMs: number }>(
  kind: Config['kind'],
  name: (config: Config) => string,
  start: (config: Config) => WorkerRole,
): void {
  if (isMainThread || (workerData as Partial<Config> | null)?.kind !== kind) return;
  const config = workerData as Config;
  const main = async (): Promise<void> => {
    const port = parentPort!;
    const deadline = setTimeout(() => {
      post<WorkerFatal>({ type: 'fatal', message: `${name(config)} passed its ${config.deadlineMs} ms deadline` });
      process.exit(1);
    }, config.deadlineMs);
    deadline.unref();
    const role = start(config);
    port.on('message', (message: ToWorker) => {
      if (message.type === 'go') {
        role.go();
      } else if (message.type === 'close') {
        role.close();
        post({ type: 'closed' });
        port.close();
      }
    });
    post(await role.open());
  };
  void main().catch((error: unknown) => {
    post<WorkerFatal>({ type: 'fatal', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    process.exit(1);
  });
}

export interface OpenCounts {
  readonly opened: number;
  readonly failed: number;
  /** From the first connect to the last connection open (or failed). */
  readonly elapsedMs: number;
  /** The first MAX_REPORTED_ERRORS reasons for a failure. */
  readonly errors: string[];
}

/**
 * Opens `connections` connections, at most `concurrency` at a time: `connect(index, done)` starts one,
 * which calls `done` once, when it is open (null) or has failed, and returns how to abort it, which
 * happens if `done` has not come within `timeoutMs`.
 */
export async function openConcurrently(
  connections: number,
  concurrency: number,
  timeoutMs: number,
  connect: (index: number, done: (error: Error | null) => void) => () => void,
): Promise<OpenCounts> {
  const started = performance.now();
  let opened = 0;
  let failed = 0;
  const errors: string[] = [];
  let next = 0;
  await new Promise<void>((resolve) => {
    if (connections === 0) {
      resolve();
      return;
    }
    const launch = (): void => {
      if (next >= connections) return;
      const index = next++;
      let timer: NodeJS.Timeout | undefined;
      const abort = connect(index, (error) => {
        clearTimeout(timer);
        if (error === null) {
          opened++;
        } else {
          failed++;
          if (errors.length < MAX_REPORTED_ERRORS) errors.push(error.message);
        }
        if (opened + failed === connections) resolve();
        else launch();
      });
      timer = setTimeout(abort, timeoutMs);
    };
    for (let i = 0; i < Math.min(concurrency, connections); i++) launch();
  });
  return { opened, failed, elapsedMs: performance.now() - started, errors };
}

/**
 * What a worker's traffic keeps, whatever its clients: the switches of the measured window, the echoes
 * counted, and the errors met (the first MAX_REPORTED_ERRORS by their text).
 */
export class TrafficState {
  /** Clients send while set: from 'go' to the end of the window. */
  sending = false;
  /** Echoes are counted and timed while set: the measured window. */
  measuring = false;
  /** Set on 'close': what the connections do as they go down is no error. */
  closing = false;
  /** Echoes verified inside the window. */
  messages = 0;
  /** Every echo verified, warm-up included. */
  verified = 0;
  readonly errors: string[] = [];
  errorCount = 0;

  error(message: string): void {
    this.errorCount++;
    if (this.errors.length < MAX_REPORTED_ERRORS) this.errors.push(message);
  }
}

/**
 * The traffic of one worker: `start(now)` at once (each client sends its first messages), a warm-up of
 * `warmupMs`, then a measured window of `durationMs`: `reset()` as it opens (zero the counters), and
 * `done(windowMs, elu)` once it has closed and sending has stopped, with the window's length and the
 * event-loop utilization of this thread over it. With `postEdges`, the edges go to the coordinator.
 */
export function measureTraffic(
  state: TrafficState,
  timing: { readonly warmupMs: number; readonly durationMs: number; readonly postEdges: boolean },
  phases: { readonly start: (now: number) => void; readonly reset: () => void; readonly done: (windowMs: number, elu: number) => void },
): void {
  state.sending = true;
  phases.start(performance.now());
  setTimeout(() => {
    state.measuring = true;
    phases.reset();
    const windowStart = performance.now();
    const eluStart = performance.eventLoopUtilization();
    if (timing.postEdges) post<WindowEdge>({ type: 'window', phase: 'start' });
    setTimeout(() => {
      state.measuring = false;
      state.sending = false;
      if (timing.postEdges) post<WindowEdge>({ type: 'window', phase: 'end' });
      const windowMs = performance.now() - windowStart;
      phases.done(windowMs, performance.eventLoopUtilization(eluStart).utilization);
    }, timing.durationMs);
  }, timing.warmupMs);
}

// ------------------------------------------------------------------------------------------ coordinator side

/**
 * The worker bootstrap: tsx's loader is not inherited by worker threads, so each registers it, then
 * imports `moduleUrl` (the load generator's module, which calls `serveWorker`).
 */
function workerSource(moduleUrl: string): string {
  const tsx = import.meta.resolve('tsx/esm/api');
  return `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(moduleUrl)}); });`;
}

/**
 * The worker threads of one measurement, one per config, running `moduleUrl`: `open()` resolves with
 * each one's 'opened' report, `run()` with each one's 'result', `close()` ends them.
 */
export class WorkerGroup<Opened extends { readonly type: 'opened' }, Result extends { readonly type: 'result' }> {
  private readonly label: string;
  private readonly workers: Worker[] = [];
  private readonly exited: Promise<void>[] = [];
  /** Per worker: messages not yet asked for, and the `next()` waiting for one. */
  private readonly inbox: (Opened | Result | WorkerSignal)[][] = [];
  private readonly waiting: (((message: Opened | Result | WorkerSignal) => void) | null)[] = [];
  private failure: Error | null = null;
  private onWindow: ((phase: 'start' | 'end') => void) | null = null;

  private constructor(label: string, moduleUrl: string, configs: readonly object[]) {
    this.label = label;
    const source = workerSource(moduleUrl);
    for (const [id, config] of configs.entries()) {
      const name = configs.length > 1 ? `${label} worker ${id}` : label;
      const worker = new Worker(source, { eval: true, workerData: config });
      this.inbox.push([]);
      this.waiting.push(null);
      worker.on('message', (message: Opened | Result | WorkerSignal) => this.deliver(id, message));
      worker.on('error', (error) => this.fail(new Error(`${name}: ${error.message}`)));
      this.exited.push(
        new Promise<void>((resolve) => {
          worker.on('exit', (code) => {
            if (code !== 0) this.fail(new Error(`${name} exited with code ${code}`));
            resolve();
          });
        }),
      );
      this.workers.push(worker);
    }
  }

  /** Starts the workers; resolves once each has reported its connections open (or failed). */
  static async open<Opened extends { readonly type: 'opened' }, Result extends { readonly type: 'result' }>(
    label: string,
    moduleUrl: string,
    configs: readonly object[],
    timeoutMs: number,
  ): Promise<{ readonly group: WorkerGroup<Opened, Result>; readonly reports: Opened[] }> {
    const group = new WorkerGroup<Opened, Result>(label, moduleUrl, configs);
    try {
      return { group, reports: await group.next<Opened>('opened', timeoutMs) };
    } catch (error) {
      await group.close();
      throw error;
    }
  }

  get size(): number {
    return this.workers.length;
  }

  private deliver(id: number, message: Opened | Result | WorkerSignal): void {
    if (message.type === 'fatal') {
      this.fail(new Error(message.message));
      return;
    }
    if (message.type === 'window') {
      this.onWindow?.(message.phase);
      return;
    }
    const waiter = this.waiting[id];
    if (waiter !== null && waiter !== undefined) {
      this.waiting[id] = null;
      waiter(message);
    } else {
      this.inbox[id]!.push(message);
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    for (let id = 0; id < this.waiting.length; id++) {
      const waiter = this.waiting[id];
      if (waiter !== null && waiter !== undefined) {
        this.waiting[id] = null;
        waiter({ type: 'fatal', message: error.message });
      }
    }
  }

  /** The next message of every worker, in worker order; throws on a worker's failure, or after `timeoutMs`. */
  private async next<M extends Opened | Result>(type: M['type'], timeoutMs: number): Promise<M[]> {
    const timer = setTimeout(() => this.fail(new Error(`${this.label}: no '${type}' within ${timeoutMs} ms`)), timeoutMs);
    const received = await Promise.all(
      this.workers.map(
        (_worker, id) =>
          new Promise<Opened | Result | WorkerSignal>((resolve) => {
            if (this.failure !== null) {
              resolve({ type: 'fatal', message: this.failure.message });
              return;
            }
            const queued = this.inbox[id]!.shift();
            if (queued !== undefined) resolve(queued);
            else this.waiting[id] = resolve;
          }),
      ),
    ).finally(() => clearTimeout(timer));
    for (const message of received) {
      if (message.type === 'fatal') throw new Error(message.message);
      if (message.type !== type) throw new Error(`${this.label}: expected '${type}', got '${message.type}'`);
    }
    return received as M[];
  }

  /**
   * 'go' to every worker, then each one's 'result'. `clientCpu` is the CPU time of this whole process
   * (every thread) ÷ wall time between the window edges a worker posts, where `hooks` run too; from
   * 'go' to the last result if no edge came.
   */
  async run(timeoutMs: number, hooks: WindowHooks): Promise<{ readonly results: Result[]; readonly clientCpu: number }> {
    let cpuStart = process.cpuUsage();
    let wallStart = performance.now();
    let cpuEnd: NodeJS.CpuUsage | null = null;
    let wallEnd = 0;
    this.onWindow = (phase) => {
      if (phase === 'start') {
        cpuStart = process.cpuUsage();
        wallStart = performance.now();
        hooks.onWindowStart?.();
      } else {
        cpuEnd = process.cpuUsage(cpuStart);
        wallEnd = performance.now();
        hooks.onWindowEnd?.();
      }
    };
    for (const worker of this.workers) worker.postMessage({ type: 'go' } satisfies ToWorker);
    let results: Result[];
    try {
      results = await this.next<Result>('result', timeoutMs);
    } finally {
      this.onWindow = null;
    }
    const usage: NodeJS.CpuUsage = cpuEnd ?? process.cpuUsage(cpuStart);
    const wallMs = (cpuEnd === null ? performance.now() : wallEnd) - wallStart;
    return { results, clientCpu: (usage.user + usage.system) / (wallMs * 1000) };
  }

  /** Drops every connection and ends the workers (terminating any that do not end within 5 s). */
  async close(): Promise<void> {
    for (const worker of this.workers) worker.postMessage({ type: 'close' } satisfies ToWorker);
    const all = Promise.all(this.exited);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), 5000);
    });
    if ((await Promise.race([all, late])) === 'late') for (const worker of this.workers) await worker.terminate();
    clearTimeout(timer);
  }
}
