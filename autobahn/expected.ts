/**
 * autobahn/expected-results.json: the behavior each case must have, shared by `npm run conformance`
 * (our replay of the cases) and `npm run autobahn:check` (an official Autobahn report).
 *
 * The file maps every case id to the behavior it must have (`"OK"`, or `"INFORMATIONAL"` for the cases
 * Autobahn only records) or to a list of allowed behaviors. A case passes when its behavior is allowed
 * and its close behavior is OK (or INFORMATIONAL for informational cases).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const EXPECTED_RESULTS_PATH = fileURLToPath(new URL('./expected-results.json', import.meta.url));

export interface ExpectedResults {
  /** Case id → allowed behaviors. */
  readonly cases: ReadonlyMap<string, readonly string[]>;
}

const BEHAVIORS = new Set(['OK', 'NON-STRICT', 'FAILED', 'INFORMATIONAL', 'UNIMPLEMENTED']);

/** Validates the parsed JSON of an expected-results file. Throws TypeError on a malformed one. */
export function parseExpectedResults(json: unknown): ExpectedResults {
  if (typeof json !== 'object' || json === null || !('cases' in json)) {
    throw new TypeError('expected results: an object with a "cases" object is required');
  }
  const raw = (json as { cases: unknown }).cases;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new TypeError('expected results: "cases" must map case ids to behaviors');
  }
  const cases = new Map<string, readonly string[]>();
  for (const [id, value] of Object.entries(raw)) {
    if (!/^\d+(\.\d+)+$/.test(id)) throw new TypeError(`expected results: "${id}" is not a case id`);
    const allowed = typeof value === 'string' ? [value] : value;
    if (!Array.isArray(allowed) || allowed.length === 0 || !allowed.every((b) => typeof b === 'string' && BEHAVIORS.has(b))) {
      throw new TypeError(`expected results: case ${id} must map to one of ${[...BEHAVIORS].join(', ')} or a list of them`);
    }
    cases.set(id, allowed as string[]);
  }
  return { cases };
}

export function loadExpectedResults(path: string = EXPECTED_RESULTS_PATH): ExpectedResults {
  return parseExpectedResults(JSON.parse(readFileSync(path, 'utf8')) as unknown);
}
