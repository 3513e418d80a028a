/**
 * A one-line progress display for long benchmark runs: which section, what it measures now, how many
 * measurements are done and an estimate of the time left, on stderr, rewritten in place.
 *
 *   progress.update('round 2/5 · ws + bufferutil · echo 16 B', 7, 100)   a section's loop, before each step
 *   progress.done()                                                      the loop is over: the line goes away
 *   progress.beginSection('e2e', { index: 1, count: 6, ... })            bench/run.ts, around each section
 *
 * It draws only on a terminal (`process.stderr.isTTY`) and not under CI (`CI` set; `BENCH_PROGRESS=0`
 * turns it off too); elsewhere every call does nothing, so logs and piped output stay clean.
 *
 * The line never tears the normal output: while it is shown, process.stdout.write and
 * process.stderr.write are wrapped so that the line is erased (`\r`, clear line) before anything else
 * is written, and drawn again after a write that ends a line. A new step's label is drawn at once;
 * other redraws (the same step's counts) are throttled to 10 a second, and a timer (unref'd, so it
 * never keeps the process alive) refreshes the time left once a second.
 *
 * Time left in a section: elapsed × (total − done) ÷ done once a step is done, before that the
 * section's expected duration (bench/run.ts passes what the last run of that mode took) minus the
 * elapsed time. For the whole run, the expected durations of the sections still to come are added.
 */

export interface SectionInfo {
  /** 0-based position of the section in this run, and how many sections the run has. */
  readonly index: number;
  readonly count: number;
  /** How long the section usually takes, when known. */
  readonly expectedSeconds?: number | undefined;
  /** The expected seconds of the sections after this one, when known for all of them. */
  readonly laterSeconds?: number | undefined;
}

export interface Progress {
  /** What runs now (`label`), and how many of the section's `total` steps are `done`. */
  update(label: string, done: number, total: number): void;
  /** The steps are over (tables follow): the line is erased until the next update or section. */
  done(): void;
  /** bench/run.ts: a section starts. */
  beginSection?(name: string, info: SectionInfo): void;
  /** bench/run.ts: the section ended; `stop` after the last one removes the line and the hooks. */
  endSection?(): void;
  stop?(): void;
}

const MIN_REDRAW_MS = 100;
const TICK_MS = 1000;
const ERASE = '\r\x1b[2K';

type Write = typeof process.stderr.write;

function enabled(): boolean {
  const ci = process.env['CI'];
  if (ci !== undefined && ci !== '' && ci !== '0' && ci !== 'false') return false;
  if (process.env['BENCH_PROGRESS'] === '0') return false;
  return process.stderr.isTTY === true;
}

/** 42s, 3m05s, 1h02m. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The seconds left of a section, or NaN when there is nothing to go by. */
export function sectionSecondsLeft(elapsed: number, done: number, total: number, expected: number | undefined): number {
  if (total > 0 && done > 0) return Math.max(0, (elapsed * (total - Math.min(done, total))) / Math.min(done, total));
  // Past the expected duration with no step done, there is nothing left to go by.
  if (expected !== undefined && Number.isFinite(expected) && expected > elapsed) return expected - elapsed;
  return Number.NaN;
}

/** Cuts `text` to `width` characters, with an ellipsis. */
function fit(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, Math.max(0, width - 1)).join('')}…`;
}

class StatusLine implements Progress {
  private readonly on = enabled();
  private section: { name: string; info: SectionInfo; started: number } | null = null;
  private label = '';
  private count = 0;
  private total = 0;
  /** Whether the line should be on screen (a section or a step is running, done() not called since). */
  private active = false;
  /** Whether it is on screen now. */
  private shown = false;
  private lastDraw = 0;
  private trailing: NodeJS.Timeout | null = null;
  private ticker: NodeJS.Timeout | null = null;
  private originals: { stdout: Write; stderr: Write } | null = null;
  /** Outside bench/run.ts (a section file run on its own): when the first step of the loop began. */
  private loopStarted: number | null = null;

  update(label: string, done: number, total: number): void {
    if (!this.on) return;
    const changed = label !== this.label || !this.active;
    if (this.section === null && this.loopStarted === null) this.loopStarted = performance.now();
    this.label = label;
    this.count = done;
    this.total = total;
    this.activate();
    // A new step is drawn at once: a synchronous step (a micro-benchmark group) gives no timer a
    // chance to run until it ends. Steps take far longer than 100 ms, so this stays within the limit.
    if (changed) this.draw();
    else this.requestDraw();
  }

  done(): void {
    if (!this.on) return;
    this.label = '';
    this.count = this.total;
    this.active = false;
    this.loopStarted = null;
    this.erase();
  }

  beginSection(name: string, info: SectionInfo): void {
    if (!this.on) return;
    this.section = { name, info, started: performance.now() };
    this.label = '';
    this.count = 0;
    this.total = 0;
    this.activate();
    this.requestDraw();
  }

  endSection(): void {
    if (!this.on) return;
    this.section = null;
    this.label = '';
    this.active = false;
    this.erase();
  }

  stop(): void {
    if (!this.on) return;
    this.endSection();
    if (this.ticker !== null) clearInterval(this.ticker);
    if (this.trailing !== null) clearTimeout(this.trailing);
    this.ticker = null;
    this.trailing = null;
    if (this.originals !== null) {
      process.stdout.write = this.originals.stdout;
      process.stderr.write = this.originals.stderr;
      this.originals = null;
    }
  }

  /** The status text, without width limit. */
  render(now = performance.now()): string {
    const parts: string[] = [];
    const section = this.section;
    let left = Number.NaN;
    if (section !== null) {
      parts.push(`[${section.info.index + 1}/${section.info.count} ${section.name}]`);
      left = sectionSecondsLeft((now - section.started) / 1000, this.count, this.total, section.info.expectedSeconds);
    } else if (this.loopStarted !== null) {
      left = sectionSecondsLeft((now - this.loopStarted) / 1000, this.count, this.total, undefined);
    }
    if (this.total > 0) parts.push(`${this.count}/${this.total} ${Math.floor((100 * Math.min(this.count, this.total)) / this.total)}%`);
    const later = section?.info.laterSeconds;
    if (Number.isFinite(left)) {
      const whole = later !== undefined && later > 0 ? `, all ~${formatDuration(left + later)}` : '';
      parts.push(`~${formatDuration(left)} left${whole}`);
    } else if (section !== null) {
      parts.push(`${formatDuration((now - section.started) / 1000)} so far`);
    }
    // A label that starts with the section's name (`e2e · round 2/5 · ...`) need not say it twice.
    const label = section !== null && this.label.startsWith(`${section.name} · `) ? this.label.slice(section.name.length + 3) : this.label;
    parts.push(label === '' ? 'starting…' : label);
    return parts.join('  ');
  }

  private activate(): void {
    this.active = true;
    this.hook();
    if (this.ticker === null) {
      this.ticker = setInterval(() => {
        if (this.active) this.draw();
      }, TICK_MS);
      this.ticker.unref();
    }
  }

  private requestDraw(): void {
    const wait = this.lastDraw + MIN_REDRAW_MS - performance.now();
    if (wait <= 0) {
      this.draw();
    } else if (this.trailing === null) {
      this.trailing = setTimeout(() => {
        this.trailing = null;
        if (this.active) this.draw();
      }, wait);
      this.trailing.unref();
    }
  }

  private draw(): void {
    if (!this.active || this.originals === null) return;
    this.lastDraw = performance.now();
    // A pseudo-terminal without a size reports 0 columns.
    const columns = process.stderr.columns > 0 ? process.stderr.columns : 80;
    const width = Math.max(20, columns - 1);
    this.originals.stderr.call(process.stderr, `${ERASE}${fit(this.render(this.lastDraw), width)}`);
    this.shown = true;
  }

  private erase(): void {
    if (!this.shown || this.originals === null) return;
    this.originals.stderr.call(process.stderr, ERASE);
    this.shown = false;
  }

  /** Wraps both streams' write once: erase before any other output, draw again after a full line. */
  private hook(): void {
    if (this.originals !== null) return;
    const originals = { stdout: process.stdout.write, stderr: process.stderr.write };
    this.originals = originals;
    const wrap = (stream: NodeJS.WriteStream, original: Write): Write =>
      ((...args: Parameters<Write>): boolean => {
        this.erase();
        const result = (original as (...a: unknown[]) => boolean).apply(stream, args);
        const chunk = args[0];
        const ends = typeof chunk === 'string' ? chunk.endsWith('\n') : chunk instanceof Uint8Array && chunk[chunk.length - 1] === 0x0a;
        if (ends && this.active) this.draw();
        return result;
      }) as Write;
    // A redirected stdout is not on the terminal: nothing to erase there.
    if (process.stdout.isTTY === true) process.stdout.write = wrap(process.stdout, originals.stdout);
    process.stderr.write = wrap(process.stderr, originals.stderr);
    process.once('exit', () => this.erase());
  }
}

const line = new StatusLine();

/** The process's status line (a no-op unless stderr is a terminal and not CI). */
export const progress: Progress & Required<Pick<Progress, 'beginSection' | 'endSection' | 'stop'>> = line;
