import assert from 'node:assert/strict';
import {execFile, execFileSync, spawnSync} from 'node:child_process';
import {cpSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync} from 'node:fs';
import path from 'node:path';
import {promisify} from 'node:util';
import {test} from 'node:test';
import {DEMO_METHOD, DEMO_PROTO, PACKAGE_ROOT} from '../../src/util/paths.js';
import {tempDir, writeJsonl} from '../helpers/job.js';
import {startServer} from '../helpers/server.js';
import {buildIsFresh} from '../helpers/cli.js';

const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  files: string[];
  scripts: Record<string, string>;
  bin: Record<string, string>;
  allowScripts: Record<string, boolean>;
};
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

/**
 * What `npm pack` makes, installed as a user installs it: the tarball into a new folder, then
 * `grpc-batch --version` and a job module that imports `grpc-batch`. Packed in a copy of the
 * package (the work tree's dist/ is left alone), built with `prepack`'s own command unless the
 * work tree's dist/ is fresh; installed with
 * npm offline, its dependencies taken from this clone's node_modules (so no registry and no
 * compile of better-sqlite3 are needed).
 */
test('npm pack: the tarball installs, its bin runs, and a job module imports grpc-batch from it', async (t) => {
  assert.equal(pkg.scripts['prepack'], 'npm run build', 'prepack builds dist/');
  const dir = tempDir(t);
  const stage = path.join(dir, 'stage');
  mkdirSync(stage);
  for (const entry of ['package.json', 'README.md', 'LICENSE', 'proto', 'schema', 'scripts', 'tsconfig.json', 'src', 'bin'])
    cpSync(path.join(PACKAGE_ROOT, entry), path.join(stage, entry), {recursive: true});
  symlinkSync(path.join(PACKAGE_ROOT, 'node_modules'), path.join(stage, 'node_modules')); // read by tsc only
  // `npm test` has just run that same build here: its dist/ is taken when it is newer than the sources.
  if (buildIsFresh()) cpSync(path.join(PACKAGE_ROOT, 'dist'), path.join(stage, 'dist'), {recursive: true});
  else execFileSync(NPM, ['run', 'build'], {cwd: stage, stdio: 'pipe'});
  const packed = JSON.parse(
    execFileSync(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {cwd: stage, encoding: 'utf8'}),
  ) as {filename: string; files: {path: string}[]}[];
  const files = packed[0]!.files.map((f) => f.path);
  assert.ok(files.includes(pkg.bin['grpc-batch']!), 'the bin is in the tarball');
  assert.ok(files.includes('dist/src/index.js') && files.includes('dist/src/index.d.ts'), 'the API and its types');
  assert.ok(files.includes('proto/demo/v1/demo.proto') && files.includes('schema/job.schema.json'));
  assert.ok(
    !files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('bench/')),
    `no sources or tests: ${files.filter((f) => /^(src|test|bench)\//.test(f)).join(', ')}`,
  );

  const app = path.join(dir, 'app');
  mkdirSync(app);
  writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({name: 'app', private: true, type: 'module', allowScripts: pkg.allowScripts}),
  );
  const production = execFileSync(NPM, ['ls', '--omit=dev', '--all', '--parseable'], {cwd: PACKAGE_ROOT, encoding: 'utf8'})
    .split('\n')
    .slice(1)
    .filter(Boolean);
  for (const folder of production)
    cpSync(folder, path.join(app, 'node_modules', path.relative(path.join(PACKAGE_ROOT, 'node_modules'), folder)), {recursive: true});
  const install = spawnSync(
    NPM,
    ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--no-package-lock', path.join(dir, packed[0]!.filename)],
    {cwd: app, encoding: 'utf8'},
  );
  assert.equal(install.status, 0, install.stderr);
  assert.deepEqual(readdirSync(path.join(app, 'node_modules', 'grpc-batch')).sort(), [
    'LICENSE',
    'README.md',
    'dist',
    'package.json',
    'proto',
    'schema',
  ]);

  const bin = path.join(app, 'node_modules', '.bin', 'grpc-batch');
  assert.equal(execFileSync(bin, ['--version'], {cwd: app, encoding: 'utf8'}).trim(), pkg.version);

  const server = await startServer(t);
  writeJsonl(path.join(app, 'input.jsonl'), [{id: 'a'}, {id: 'b'}]);
  writeFileSync(
    path.join(app, 'rescore.job.ts'),
    [
      `import {defineJob, type RecordResult} from 'grpc-batch';`,
      `const seen: RecordResult[] = [];`,
      `process.on('exit', () => { if (seen.length !== 2) process.exitCode = 9; });`,
      `export default defineJob({`,
      `  name: 'rescore', target: ${JSON.stringify(server.address)}, proto: ${JSON.stringify(DEMO_PROTO)}, method: ${JSON.stringify(DEMO_METHOD)},`,
      `  input: './input.jsonl', output: 'out/{runId}.jsonl', failures: 'out/{runId}.failed.jsonl',`,
      `  onResult(result) { seen.push(result); },`,
      `});`,
      '',
    ].join('\n'),
  );
  // Not execFileSync: the server runs in this process and must go on answering.
  const env = {...process.env, GRPC_BATCH_LOG: 'warn'} as NodeJS.ProcessEnv;
  delete env['NODE_OPTIONS'];
  delete env['NODE_TEST_CONTEXT'];
  const {stdout} = await promisify(execFile)(bin, ['run', 'rescore.job.ts', '--json', '--state', path.join(app, 'state.db')], {
    cwd: app,
    env,
    encoding: 'utf8',
  });
  const summary = JSON.parse(stdout) as {status: string; ok: number};
  assert.deepEqual([summary.status, summary.ok], ['succeeded', 2]);
  assert.equal(server.stats.calls, 2);
});

test('allowScripts reviews every install script of the installed dependencies: npm ci prints no "not yet covered" warning', (t) => {
  const listed = spawnSync(NPM, ['install-scripts', 'ls', '--json'], {cwd: PACKAGE_ROOT, encoding: 'utf8'});
  // npm before 11.16 has no allowScripts at all (and so nothing to warn about).
  if (listed.status !== 0 && /Unknown command|not a valid npm command/i.test(listed.stderr + listed.stdout))
    return t.skip(`npm ${execFileSync(NPM, ['--version'], {encoding: 'utf8'}).trim()} has no install-scripts`);
  assert.equal(listed.status, 0, listed.stderr);
  const pending = (JSON.parse(listed.stdout) as {allowScripts: {name: string}[]}).allowScripts.map((p) => p.name);
  assert.deepEqual(pending, [], `install scripts not in package.json's allowScripts: ${pending.join(', ')}`);
  assert.equal(pkg.allowScripts['better-sqlite3'], true, 'better-sqlite3 builds its binding in its install script');
});
