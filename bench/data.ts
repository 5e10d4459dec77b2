import {createWriteStream, existsSync, mkdirSync, renameSync, statSync} from 'node:fs';
import {once} from 'node:events';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

/** Where generated inputs live (git-ignored). */
export const DATA_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '.data');

/** One demo request per line: `{"id":"r1","payload":"record 1","latencyMs":20}`. */
function line(index: number, latencyMs: number): string {
  return `{"id":"r${index}","payload":"record ${index}","latencyMs":${latencyMs}}\n`;
}

/**
 * Writes (once, then reuses) a JSONL input of `records` demo requests with `latencyMs` each.
 * Streamed in chunks, so making a 1M-record file needs no more memory than a 100-record one.
 */
export async function ensureInput(records: number, latencyMs: number): Promise<string> {
  mkdirSync(DATA_DIR, {recursive: true});
  const file = path.join(DATA_DIR, `input-${records}-${latencyMs}ms.jsonl`);
  if (existsSync(file) && statSync(file).size > 0) return file;
  const partial = `${file}.partial`;
  const stream = createWriteStream(partial);
  const CHUNK = 10_000;
  for (let start = 1; start <= records; start += CHUNK) {
    let text = '';
    for (let i = start; i < start + CHUNK && i <= records; i++) text += line(i, latencyMs);
    if (!stream.write(text)) await once(stream, 'drain');
  }
  stream.end();
  await once(stream, 'finish');
  renameSync(partial, file);
  return file;
}
