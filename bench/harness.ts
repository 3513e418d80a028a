/**
 * A tiny benchmark harness with no dependencies.
 *
 * A case is a function that runs `iterations` iterations of its body; the loop lives in the case, not
 * here, so every case is optimized on its own and no call site in the harness decides which case gets
 * inlined. The harness calibrates a batch size, warms the case up, then takes samples: each sample runs
 * whole batches until `sampleMs` have passed and records units per second.
 *
 * Cases that are compared are measured interleaved (A, B, A, B, ... sample by sample, the order reversed
 * on every other round), so a ratio is computed from samples taken side by side in the same process, and
 * slow drift (thermal, other load, heap growth) hits both sides alike. The reported ratio is the median
 * of the per-round ratios, with their min and max.
 *
 * MB/s is 10^6 bytes per second.
 */
import { performance } from 'node:perf_hooks';

export interface BenchCase {
  /** Row label, e.g. `rfc6455 Protocol` or `ws Receiver`. */
  readonly name: string;
  /** Runs the measured body `iterations` times. */
  readonly run: (iterations: number) => void;
  /** Units (frames, calls, ...) one iteration processes: ops/s counts these. Default 1. */
  readonly unitsPerIteration?: number;
  /** Bytes one iteration processes, for MB/s. Omit when throughput in bytes means nothing. */
  readonly bytesPerIteration?: number;
}

export interface HarnessOptions {
  /** Measured samples per case (the median of these is reported). */
  readonly samples: number;
  /** Minimum duration of one sample. */
  readonly sampleMs: number;
  /** Warm-up time per case before the first sample. */
  readonly warmupMs: number;
}

export interface Stats {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface BenchResult {
  readonly group: string;
  readonly name: string;
  /** What ops/s counts, e.g. `frames`. */
  readonly unit: string;
  readonly unitsPerIteration: number;
  readonly bytesPerIteration: number | null;
  /** Units per second. */
  readonly opsPerSec: Stats;
  /** 10^6 bytes per second, or null without `bytesPerIteration`. */
  readonly mbPerSec: Stats | null;
  /** Units per second of each sample, in the order taken. */
  readonly samples: readonly number[];
  readonly iterationsPerBatch: number;
}

export interface RatioResult {
  readonly group: string;
  /** `numerator / denominator`, by case name. */
  readonly numerator: string;
  readonly denominator: string;
  /** Median, min and max of the per-round ratios of ops/s. */
  readonly ratio: Stats;
}

export interface GroupResult {
  readonly group: string;
  readonly unit: string;
  readonly results: readonly BenchResult[];
  readonly ratios: readonly RatioResult[];
}

/** The finite values (a failed or empty measurement gives NaN), for `stats`. */
export function finite(values: readonly number[]): number[] {
  return values.filter((value) => Number.isFinite(value));
}

export function stats(values: readonly number[]): Stats {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** A batch should take about this long, so the clock is read rarely but samples end close to time. */
function targetBatchMs(options: HarnessOptions): number {
  return Math.max(0.5, options.sampleMs / 20);
}

/** Finds how many iterations make a batch of about the target duration (at least 1). */
function calibrate(benchCase: BenchCase, options: HarnessOptions): number {
  const target = targetBatchMs(options);
  let iterations = 1;
  for (;;) {
    const start = performance.now();
    benchCase.run(iterations);
    const elapsed = performance.now() - start;
    if (elapsed >= target || iterations >= 1 << 30) {
      return Math.max(1, Math.round((iterations * target) / Math.max(elapsed, 1e-3)));
    }
    iterations = elapsed < target / 16 ? iterations * 16 : Math.ceil((iterations * target * 1.2) / Math.max(elapsed, 1e-3));
  }
}

/** Runs whole batches for at least `ms`; returns [iterations, elapsed ms]. */
function runFor(benchCase: BenchCase, batch: number, ms: number): [number, number] {
  let iterations = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    benchCase.run(batch);
    iterations += batch;
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return [iterations, elapsed];
}

/**
 * Measures `cases` interleaved: after each case's warm-up, round r runs one sample of every case, in
 * the given order on even rounds and reversed on odd ones. `ratios` lists [numerator, denominator]
 * case names to compare.
 */
export function runGroup(
  group: string,
  unit: string,
  cases: readonly BenchCase[],
  options: HarnessOptions,
  ratios: readonly (readonly [string, string])[] = [],
): GroupResult {
  const batches = cases.map((benchCase) => {
    const batch = calibrate(benchCase, options);
    runFor(benchCase, batch, options.warmupMs);
    // Recalibrate once warm: the optimized code may be much faster than the first estimate.
    return calibrate(benchCase, options);
  });
  const samples: number[][] = cases.map(() => []);
  for (let round = 0; round < options.samples; round++) {
    for (let k = 0; k < cases.length; k++) {
      const index = round % 2 === 0 ? k : cases.length - 1 - k;
      const benchCase = cases[index]!;
      const [iterations, elapsed] = runFor(benchCase, batches[index]!, options.sampleMs);
      samples[index]!.push((iterations * (benchCase.unitsPerIteration ?? 1) * 1000) / elapsed);
    }
  }
  const results = cases.map((benchCase, index): BenchResult => {
    const taken = samples[index]!;
    const unitsPerIteration = benchCase.unitsPerIteration ?? 1;
    const bytes = benchCase.bytesPerIteration;
    const bytesPerUnit = bytes === undefined ? null : bytes / unitsPerIteration;
    return {
      group,
      name: benchCase.name,
      unit,
      unitsPerIteration,
      bytesPerIteration: bytes ?? null,
      opsPerSec: stats(taken),
      mbPerSec: bytesPerUnit === null ? null : stats(taken.map((ops) => (ops * bytesPerUnit) / 1e6)),
      samples: taken,
      iterationsPerBatch: batches[index]!,
    };
  });
  const ratioResults = ratios.map(([numerator, denominator]): RatioResult => {
    const a = results.find((result) => result.name === numerator);
    const b = results.find((result) => result.name === denominator);
    if (a === undefined || b === undefined) throw new Error(`ratio ${numerator} / ${denominator}: unknown case in ${group}`);
    const perRound = a.samples.map((value, round) => value / b.samples[round]!);
    return { group, numerator, denominator, ratio: stats(perRound) };
  });
  return { group, unit, results, ratios: ratioResults };
}

// ------------------------------------------------------------------------------------------ printing

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  if (value >= 1e9) return `${(value / 1e9).toFixed(2)} G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(2)} M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)} k`;
  return value.toFixed(1);
}

function formatMb(value: number): string {
  if (value >= 1000) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** Formats one group as a table: median ops/s, median MB/s with min–max, then the ratios. */
export function formatGroup(result: GroupResult): string {
  const nameWidth = Math.max(24, ...result.results.map((row) => row.name.length));
  const lines: string[] = [];
  lines.push(`${result.group}`);
  lines.push(
    `  ${'case'.padEnd(nameWidth)}  ${`${result.unit}/s`.padStart(10)}  ${'MB/s'.padStart(8)}  ${'min – max MB/s (or ops/s)'.padStart(26)}`,
  );
  for (const row of result.results) {
    const spread = row.mbPerSec ?? row.opsPerSec;
    const format = row.mbPerSec === null ? formatNumber : formatMb;
    lines.push(
      `  ${row.name.padEnd(nameWidth)}  ${formatNumber(row.opsPerSec.median).padStart(10)}  ${
        row.mbPerSec === null ? '-'.padStart(8) : formatMb(row.mbPerSec.median).padStart(8)
      }  ${`${format(spread.min)} – ${format(spread.max)}`.padStart(26)}`,
    );
  }
  for (const ratio of result.ratios) {
    lines.push(
      `  ratio ${ratio.numerator} / ${ratio.denominator}: ${ratio.ratio.median.toFixed(2)}x (min ${ratio.ratio.min.toFixed(2)}, max ${ratio.ratio.max.toFixed(2)})`,
    );
  }
  return lines.join('\n');
}
