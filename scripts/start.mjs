/**
 * `npm start`: the echo server (examples/echo-server.ts) as compiled JavaScript, the code the package
 * ships, not the TypeScript through tsx (whose esbuild `keepNames` costs memory per closure, so a tsx run
 * would not measure what users run).
 *
 * tsc emits src/ and the example into .build/start with the options `npm run build` uses for dist/
 * (tsconfig.start.json). It runs only when a source file is newer than the last build, so a second
 * start costs a directory scan, not a compile. Arguments pass through: `npm start -- --port 9002`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const output = join(root, '.build', 'start');
const entry = join(output, 'examples', 'echo-server.js');
const stamp = join(output, '.built');
const inputs = [join(root, 'src'), join(root, 'examples', 'echo-server.ts'), join(root, 'tsconfig.json'), join(root, 'tsconfig.start.json')];

function newestChange(path) {
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.mtimeMs;
  let newest = stats.mtimeMs;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestChange(join(path, name)));
  return newest;
}

const stale = !existsSync(entry) || !existsSync(stamp) || Math.max(...inputs.map(newestChange)) > statSync(stamp).mtimeMs;
if (stale) {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  // Emit only: `npm test` type-checks; a failed emit stops here with tsc's own message.
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.start.json'), '--noCheck'], { stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
  writeFileSync(stamp, `${new Date().toISOString()}\n`);
}

await import(pathToFileURL(entry).href);
