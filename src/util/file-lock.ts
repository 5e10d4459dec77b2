import {closeSync, ftruncateSync, mkdirSync, openSync} from 'node:fs';
import path from 'node:path';
import fsx from 'fs-native-extensions';
import {IoError, UsageError} from '../errors.js';

/**
 * An exclusive lock on a run's results and failures files, held from before the run is claimed in
 * the state database until after its end is recorded. It is a kernel lock (an open-file-description
 * lock through fs-native-extensions): the kernel drops it when the process dies, whatever killed it,
 * so a lock that can be taken also proves that no live process writes those files, on this host
 * and in any container sharing its kernel and disk. A second run naming the same file is refused
 * before it truncates or appends anything.
 */
export class RunFilesLock {
  readonly files: readonly string[];
  readonly #fds: number[];
  readonly #created: ReadonlySet<string>;
  #released = false;

  private constructor(files: string[], fds: number[], created: Set<string>) {
    this.files = files;
    this.#fds = fds;
    this.#created = created;
  }

  /**
   * Opens (creating them and their folders, never truncating) and locks `output` and `failures`.
   * Throws `UsageError` (exit 2, nothing sent) naming the file when another run holds it.
   */
  static acquire(
    files: {readonly output: string; readonly failures: string},
    options: {holder?: (file: string) => string | undefined} = {},
  ): RunFilesLock {
    const paths = [path.resolve(files.output), path.resolve(files.failures)];
    if (paths[0] === paths[1]) throw new UsageError(`output and failures are the same file (${paths[0]}); give each its own path`);
    const fds: number[] = [];
    const created = new Set<string>();
    try {
      for (const [index, file] of paths.entries()) {
        let fd: number;
        try {
          mkdirSync(path.dirname(file), {recursive: true});
          fd = openExisting(file) ?? (created.add(file), openSync(file, 'a'));
        } catch (error) {
          throw new IoError(file, error, {key: index === 0 ? 'output' : 'failures', what: 'create'});
        }
        fds.push(fd);
        if (!fsx.tryLock(fd)) {
          const who = options.holder?.(file);
          throw new UsageError(
            `${file} is being written by another run${who ? ` (${who})` : ''}: two runs cannot share a results or failures file; wait for it to end, or give this run its own --output and --failures (a {runId} in the path does that)`,
          );
        }
      }
    } catch (error) {
      for (const fd of fds) closeSync(fd);
      throw error;
    }
    return new RunFilesLock(paths, fds, created);
  }

  /** Whether this lock made `file` (it did not exist before). */
  created(file: string): boolean {
    return this.#created.has(path.resolve(file));
  }

  /** Empties a locked file (a new run's files start empty). */
  truncate(file: string): void {
    const index = this.files.indexOf(path.resolve(file));
    if (index === -1) throw new Error(`${file} is not locked here`);
    try {
      ftruncateSync(this.#fds[index]!, 0);
    } catch (error) {
      throw new IoError(file, error);
    }
  }

  /** Unlocks and closes. Idempotent. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    for (const fd of this.#fds) {
      try {
        closeSync(fd); // closing the last descriptor of the open file drops its lock
      } catch {
        // nothing useful to do: the lock goes with the process at the latest
      }
    }
  }
}

/**
 * Whether a live process holds the lock on `file` (a run is writing it). False when the file is
 * gone or can be locked, which means that its writer, if any, is dead.
 */
export function isFileLocked(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openExisting(file);
    if (fd === undefined) return false;
    return !fsx.tryLock(fd);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function openExisting(file: string): number | undefined {
  try {
    return openSync(file, 'r+');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
