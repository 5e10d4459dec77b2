import assert from 'node:assert/strict';
import {spawnSync} from 'node:child_process';
import {mkdirSync, mkdtempSync, rmSync, writeFileSync, copyFileSync} from 'node:fs';
import {tmpdir} from 'node:os';
import path from 'node:path';
import {test} from 'node:test';
import {fileURLToPath} from 'node:url';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEPCRUISE = path.join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');

function depcruise(cwd: string, ...paths: string[]) {
  const result = spawnSync(process.execPath, [DEPCRUISE, '--config', CONFIG, '--output-type', 'err', ...paths], {
    cwd,
    encoding: 'utf8',
    timeout: 180_000,
  });
  assert.equal(result.error, undefined, `dependency-cruiser did not run: ${result.error}`);
  return {code: result.status, out: `${result.stdout}${result.stderr}`};
}

test('the house: no import cycle and no folder imports a later one (dependency-cruiser)', () => {
  const {code, out} = depcruise(ROOT, 'src', 'bin');
  assert.equal(code, 0, out);
  assert.match(out, /no dependency violations found/);
});

test('the layering check fails when a lower folder imports a higher one, and on a cycle', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gb-layers-'));
  t.after(() => rmSync(dir, {recursive: true, force: true}));
  copyFileSync(path.join(ROOT, 'tsconfig.json'), path.join(dir, 'tsconfig.json'));
  const write = (file: string, text: string) => {
    mkdirSync(path.dirname(path.join(dir, file)), {recursive: true});
    writeFileSync(path.join(dir, file), text);
  };
  write('src/engine/pipeline.ts', 'export const pipeline = 1;\n');
  // util is below engine: importing it breaks the order, even for a type.
  write('src/util/log.ts', "import type {} from '../engine/pipeline.js';\nexport const log = 1;\n");
  write('src/io/a.ts', "import {b} from './b.js';\nexport const a = b;\n");
  write('src/io/b.ts', "import type {a} from './a.js';\nexport const b = 1 as typeof a;\n");
  const {code, out} = depcruise(dir, 'src');
  assert.notEqual(code, 0, out);
  assert.match(out, /layer-util.*src\/util\/log\.ts → src\/engine\/pipeline\.ts/s);
  assert.match(out, /no-circular/);
});
