/**
 * Path routing for upgrade requests: patterns such as `/items/{item_id}/ws`, where `{name}` matches
 * one non-empty path segment and is passed to the handler percent-decoded, and `*` matches any path.
 */
import { HandshakeError } from './errors.ts';

export type PathParams = Readonly<Record<string, string>>;

/** A compiled route pattern. `match` returns the path parameters, or null when the path does not match. */
export interface RoutePattern {
  readonly pattern: string;
  match(path: string): PathParams | null;
}

const PARAMETER = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

/** The parameters of a route without any, shared by every connection on it. */
const NO_PARAMS: PathParams = Object.freeze({});

export function compileRoute(pattern: string): RoutePattern {
  if (pattern === '*') return { pattern, match: () => NO_PARAMS };
  if (!pattern.startsWith('/')) throw new TypeError(`route ${JSON.stringify(pattern)} must start with "/" (or be "*")`);
  const segments = pattern.split('/').slice(1);
  const names: (string | null)[] = [];
  const seen = new Set<string>();
  for (const segment of segments) {
    const parameter = PARAMETER.exec(segment);
    if (parameter !== null) {
      const name = parameter[1]!;
      if (seen.has(name)) throw new TypeError(`route ${JSON.stringify(pattern)} repeats the parameter {${name}}`);
      seen.add(name);
      names.push(name);
    } else {
      if (segment.includes('{') || segment.includes('}')) {
        throw new TypeError(`route ${JSON.stringify(pattern)}: a parameter must be a whole segment like {name}`);
      }
      names.push(null);
    }
  }
  const hasParameters = names.some((name) => name !== null);
  return {
    pattern,
    match(path: string): PathParams | null {
      const parts = path.split('/');
      if (parts.length !== segments.length + 1 || parts[0] !== '') return null;
      const params: Record<string, string> = {};
      for (let i = 0; i < segments.length; i++) {
        const part = parts[i + 1]!;
        const name = names[i];
        if (name === null || name === undefined) {
          if (part !== segments[i]) return null;
          continue;
        }
        if (part === '') return null;
        try {
          params[name] = decodeURIComponent(part);
        } catch {
          throw new HandshakeError(400, 'malformed percent-encoding in the request path');
        }
      }
      return hasParameters ? params : NO_PARAMS;
    },
  };
}
