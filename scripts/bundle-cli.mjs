#!/usr/bin/env node
/**
 * (cold) Bundles the CLI after `tsc`: dist/bin/grpc-batch.js becomes one small entry plus chunks in
 * dist/cli/, one per command's lazy import, holding grpc-batch's own modules and the pure-JS
 * packages they use. Node then opens some 60 files instead of 400-600 at each start, which is most
 * of what a command's start-up costs (bench/cold-start.ts; bench/README.md). The library
 * (dist/src/, the package's `main`) is left as tsc wrote it.
 *
 * Left out of the bundle, loaded from node_modules as before: packages with native addons
 * (better-sqlite3, fs-native-extensions), those that read files of their own at run time (bullmq's
 * Lua scripts; ioredis goes with it, so that bullmq and grpc-batch share one ioredis), and tsx.
 * The thread executor's worker script is an entry of its own next to the chunks, where
 * src/engine/executor-threads.ts looks for it (`./thread-worker.js` beside itself).
 */
import {readFileSync, rmSync} from 'node:fs';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {build} from 'esbuild';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');
const CLI = path.join(DIST, 'cli');

/** Packages loaded from node_modules at run time (see above). */
export const EXTERNAL = ['better-sqlite3', 'fs-native-extensions', 'bullmq', 'ioredis', 'tsx'];

const entry = path.join(DIST, 'bin', 'grpc-batch.js');
if (readFileSync(entry, 'utf8').includes('../cli/')) {
  throw new Error(`${entry} is bundled already: run \`npm run build\` (tsc writes it again, then this bundles it)`);
}
rmSync(CLI, {recursive: true, force: true});

await build({
  entryPoints: [
    {in: entry, out: 'bin/grpc-batch'},
    {in: path.join(DIST, 'src', 'engine', 'thread-worker.js'), out: 'cli/thread-worker'},
  ],
  outdir: DIST,
  chunkNames: 'cli/[name]-[hash]',
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: EXTERNAL,
  // CommonJS packages in an ES module: their require() of Node's modules needs a real require.
  banner: {js: `import {createRequire as __gbCreateRequire} from 'node:module'; const require = __gbCreateRequire(import.meta.url);`},
  logLevel: 'warning',
  legalComments: 'none',
  // Classes keep their names (errors are named after their class) where the bundle renames one.
  keepNames: true,
});
