import {close, fsync, open, statSync, unlinkSync} from 'node:fs';
import {promisify} from 'node:util';

/**
 * Durability: what a power cut or a kernel crash cannot take back. A results line is durable once
 * its file was fsynced; the run fsyncs the failures file, then the results file, before it records
 * a checkpoint and at its end, so a checkpoint never points past what is on disk. fsync runs on
 * libuv's thread pool, so a slow disk delays the checkpoint, not the calls.
 */

const fsyncP = promisify(fsync);
const openP = promisify(open);
const closeP = promisify(close);

/** fsync(2) of an open file, off the event loop. */
export function fsyncAsync(fd: number): Promise<void> {
  return fsyncP(fd);
}

/** fsyncs a folder, so the names of files just made in it survive a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = await openP(dir, 'r');
  try {
    await fsyncP(fd);
  } catch (error) {
    // Some file systems refuse fsync on a folder (EINVAL); the file's own fsync still holds.
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
  } finally {
    await closeP(fd);
  }
}

/** Deletes `file` when it exists and is empty (a failures file the lock made and no record needed). */
export function removeIfEmpty(file: string): void {
  try {
    if (statSync(file, {throwIfNoEntry: false})?.size === 0) unlinkSync(file);
  } catch {
    // an empty file left behind is harmless
  }
}
