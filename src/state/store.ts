import {mkdirSync} from 'node:fs';
import {hostname} from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import {getErrorMessage, UsageError} from '../errors.js';
import {parseStopReason, type StopReason} from '../stop-reason.js';
import {MIGRATIONS, type Migration} from './migrations.js';
import type {InputRead} from '../io/input-digest.js';
import type {Checkpoint} from '../engine/run.js';
import type {RecordedJob, RecordedSpec, ResumeInfo, RunOutcome, RunRecord, RunStatus, RunTrigger} from './records.js';

/**
 * The state database: every run (scheduled, caught up or manual, from the daemon and from
 * `grpc-batch run`) and each job's last fired tick, in one SQLite file (WAL, busy timeout, every
 * write in a transaction), so several processes can share it. The API is small on purpose:
 * `open`, four writes, three reads, `close`.
 */

/** Where the state lives unless `--state` or `GRPC_BATCH_STATE` say otherwise. */
export const DEFAULT_STATE_PATH = '.grpc-batch/state.db';
/**
 * How long a statement waits for another process's lock before it fails with SQLITE_BUSY. Short on
 * purpose: better-sqlite3 waits on the event loop's thread, so a long wait would stop every call
 * of the run. Writes that must land are retried off the hot path (see `retryBusy`); checkpoints
 * and heartbeats that meet a lock are skipped, the next one carries newer progress.
 */
export const BUSY_TIMEOUT_MS = 20;
/** Opening and migrating may wait longer: nothing runs yet. */
const OPEN_BUSY_TIMEOUT_MS = 10_000;
/** A run whose owner has not renewed its lease for this long is taken as gone (interrupted). */
export const LEASE_MS = 30_000;

export type {RecordedJob, RecordedSpec, ResumeInfo, RunOutcome, RunRecord, RunStatus, RunTrigger} from './records.js';
export {summaryOutcome} from './records.js';

interface CheckpointRow {
  run_id: string;
  job_file: string;
  input: string | null;
  input_size: number | null;
  input_mtime: number | null;
  output: string;
  failures: string;
  updated_at: number;
  spec: string | null;
  job: string | null;
  input_read: number | null;
  input_sha256: string | null;
  results: number | null;
}

interface RunRow {
  run_id: string;
  job: string;
  trigger: RunTrigger;
  scheduled_at: number | null;
  created_at: number;
  started_at: number | null;
  ended_at: number | null;
  status: RunStatus;
  reason: string | null;
  stop: string | null;
  total: number | null;
  input_records: number | null;
  ok: number | null;
  failed: number | null;
  invalid: number | null;
  by_status: string | null;
  output: string | null;
  failures: string | null;
  host: string;
  pid: number;
  owner: string | null;
  heartbeat_at: number | null;
}

/** When a running run's lease was last renewed (rows of older versions: when they started). */
const HEARTBEAT = 'COALESCE(heartbeat_at, started_at, created_at)';
/** A run that `maxFailures` or `maxInvalid` stopped: `failed`, yet resumable with the limit raised (see `isThresholdStop`). */
const THRESHOLD_ABORT = "(status = 'failed' AND COALESCE(stop, '') IN ('maxFailures', 'maxInvalid'))";

/** The state path from a flag, then `GRPC_BATCH_STATE`, then the default; `explicit` tells whether one was given. */
export function resolveStatePath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): {path: string; explicit: boolean} {
  const given = flag ?? (env['GRPC_BATCH_STATE'] || undefined);
  return {path: path.resolve(given ?? DEFAULT_STATE_PATH), explicit: given !== undefined};
}

export class StateStore {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #host = hostname();
  #closed = false;

  private constructor(file: string, db: Database.Database) {
    this.path = file;
    this.#db = db;
  }

  /**
   * Opens (creating the folder and file if needed) and migrates the database. Throws `UsageError`
   * when the file cannot be opened or was written by a newer grpc-batch.
   * `readonly` opens an existing file without migrating or writing (for `history` and `list`).
   */
  static open(file: string, options: {readonly?: boolean; migrations?: readonly Migration[]} = {}): StateStore {
    const full = path.resolve(file);
    let db: Database.Database;
    try {
      if (!options.readonly) mkdirSync(path.dirname(full), {recursive: true});
      db = new Database(full, {
        readonly: options.readonly ?? false,
        fileMustExist: options.readonly ?? false,
        timeout: OPEN_BUSY_TIMEOUT_MS,
      });
      if (!options.readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
      }
    } catch (error) {
      // npm 11 runs no install script it was not allowed to: better-sqlite3 is then left unbuilt.
      const unbuilt = /Could not locate the bindings file|better_sqlite3\.node/.test(getErrorMessage(error))
        ? "; better-sqlite3's native module is not built (its install script did not run): npm install-scripts approve better-sqlite3 && npm rebuild better-sqlite3"
        : '';
      throw new UsageError(`state database ${full}: cannot open it: ${getErrorMessage(error).split('\n')[0]}${unbuilt}`, {cause: error});
    }
    const store = new StateStore(full, db);
    try {
      store.#migrate(options.migrations ?? MIGRATIONS, options.readonly ?? false);
      db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    } catch (error) {
      db.close();
      throw error;
    }
    return store;
  }

  /** The schema version (`PRAGMA user_version`). */
  get schemaVersion(): number {
    return this.#db.pragma('user_version', {simple: true}) as number;
  }

  #migrate(migrations: readonly Migration[], readonly: boolean): void {
    const latest = migrations.at(-1)?.version ?? 0;
    const current = this.schemaVersion;
    if (current > latest)
      throw new UsageError(
        `state database ${this.path}: schema version ${current} is newer than this grpc-batch knows (${latest}); upgrade grpc-batch or use another --state`,
      );
    if (current === latest) return;
    if (readonly)
      throw new UsageError(
        `state database ${this.path}: schema version ${current}, expected ${latest}; run the daemon or grpc-batch run once to upgrade it`,
      );
    // IMMEDIATE: two processes opening a new file at once must not both migrate it.
    this.#db
      .transaction(() => {
        const now = this.schemaVersion;
        for (const migration of migrations) {
          if (migration.version <= now) continue;
          this.#db.exec(migration.sql);
          this.#db.pragma(`user_version = ${migration.version}`);
        }
      })
      .immediate();
  }

  /**
   * Records a run that starts now (status `running`), owned by `owner`, with where it reads and
   * writes (for `--resume`): one transaction, so a run is never recorded without its files.
   */
  startRun(run: {
    runId: string;
    job: string;
    trigger: RunTrigger;
    scheduledAt?: number | undefined;
    startedAt: number;
    owner?: string;
    resume?: ResumeInfo | undefined;
  }): void {
    this.#write(
      () => {
        this.#db
          .prepare(
            `INSERT INTO runs (run_id, job, trigger, scheduled_at, created_at, started_at, status, host, pid, owner, heartbeat_at)
         VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)`,
          )
          .run(
            run.runId,
            run.job,
            run.trigger,
            run.scheduledAt ?? null,
            run.startedAt,
            run.startedAt,
            this.#host,
            process.pid,
            run.owner ?? null,
            run.startedAt,
          );
        if (run.resume) this.#saveResumeInfo(run.runId, run.resume, run.startedAt);
      },
      {durable: true},
    );
  }

  /**
   * Claims a stored run for `owner` (a resume), in one statement that checks its status: it must be
   * resumable (interrupted, cancelled, error, or failed because `maxFailures`/`maxInvalid` stopped
   * it), or `running` with a lease that ran out, or `running` while `ownerGone` (the caller holds the
   * run's file lock, so no live process writes it). Returns false, changing nothing, when another
   * process owns it.
   */
  claimRun(runId: string, owner: string, options: {now?: number; ownerGone?: boolean} = {}): boolean {
    const now = options.now ?? Date.now();
    let claimed = false;
    this.#write(
      () => {
        claimed =
          this.#db
            .prepare(
              `UPDATE runs SET status = 'running', ended_at = NULL, reason = NULL, stop = NULL, started_at = COALESCE(started_at, ?), host = ?, pid = ?, owner = ?, heartbeat_at = ?
         WHERE run_id = ? AND (status IN ('interrupted', 'cancelled', 'error') OR ${THRESHOLD_ABORT}
           OR (status = 'running' AND (? OR ${HEARTBEAT} < ?)))`,
            )
            .run(now, this.#host, process.pid, owner, now, runId, options.ownerGone ? 1 : 0, now - LEASE_MS).changes === 1;
      },
      {durable: true},
    );
    return claimed;
  }

  /** Renews `owner`'s lease on a running run. False when the run is no longer its own. */
  renewLease(runId: string, owner: string, now = Date.now()): boolean {
    let renewed = false;
    this.#write(() => {
      renewed =
        this.#db.prepare(`UPDATE runs SET heartbeat_at = ? WHERE run_id = ? AND owner = ? AND status = 'running'`).run(now, runId, owner)
          .changes === 1;
    });
    return renewed;
  }

  /** Records how a running run ended; with `owner`, only while that owner still holds it. Returns whether it did. */
  finishRun(runId: string, outcome: RunOutcome, owner?: string): boolean {
    let changed = false;
    this.#write(
      () => {
        changed =
          this.#db
            .prepare(
              `UPDATE runs SET status = ?, ended_at = ?, reason = ?, stop = ?, total = ?, input_records = ?, ok = ?, failed = ?, invalid = ?, by_status = ?, output = ?, failures = ?
         WHERE run_id = ? AND (? IS NULL OR owner = ?)`,
            )
            .run(
              outcome.status,
              outcome.endedAt,
              outcome.reason ?? null,
              outcome.stop ?? null,
              outcome.total ?? null,
              outcome.inputRecords ?? null,
              outcome.ok ?? null,
              outcome.failed ?? null,
              outcome.invalid ?? null,
              outcome.byStatus ? JSON.stringify(outcome.byStatus) : null,
              outcome.output ?? null,
              outcome.failures ?? null,
              runId,
              owner ?? null,
              owner ?? null,
            ).changes === 1;
      },
      {durable: true},
    );
    return changed;
  }

  /** Records a run that was not started (overlap policy, shutdown), with why. */
  recordSkipped(run: {
    runId: string;
    job: string;
    trigger: RunTrigger;
    scheduledAt?: number | undefined;
    at: number;
    reason: string;
  }): void {
    this.#write(() =>
      this.#db
        .prepare(
          `INSERT INTO runs (run_id, job, trigger, scheduled_at, created_at, ended_at, status, reason, host, pid)
       VALUES (?, ?, ?, ?, ?, ?, 'skipped', ?, ?, ?)`,
        )
        .run(run.runId, run.job, run.trigger, run.scheduledAt ?? null, run.at, run.at, run.reason, this.#host, process.pid),
    );
  }

  /** Stores a job's last fired (or deliberately passed) tick; catch-up looks for ticks after it. */
  setLastTick(job: string, tickAt: number, now = Date.now()): void {
    this.#write(() =>
      this.#db
        .prepare(
          `INSERT INTO job_ticks (job, last_tick_at, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (job) DO UPDATE SET last_tick_at = excluded.last_tick_at, updated_at = excluded.updated_at`,
        )
        .run(job, tickAt, now),
    );
  }

  getLastTick(job: string): number | undefined {
    const row = this.#db.prepare('SELECT last_tick_at FROM job_ticks WHERE job = ?').get(job) as {last_tick_at: number} | undefined;
    return row?.last_tick_at;
  }

  /** Runs, newest first. */
  listRuns(filter: {job?: string | undefined; limit?: number | undefined; status?: RunStatus | undefined} = {}): RunRecord[] {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.job !== undefined) where.push('job = ?'), params.push(filter.job);
    if (filter.status !== undefined) where.push('status = ?'), params.push(filter.status);
    const sql = `SELECT * FROM runs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, rowid DESC LIMIT ?`;
    const now = Date.now();
    return (this.#db.prepare(sql).all(...params, filter.limit ?? -1) as RunRow[]).map((row) => toRecord(row, now));
  }

  getRun(runId: string): RunRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM runs WHERE run_id = ?').get(runId) as RunRow | undefined;
    return row ? toRecord(row, Date.now()) : undefined;
  }

  /** Runs stored as `running`, as stored (a lease that ran out is not turned into `interrupted` here). */
  listRunning(): {runId: string; owner: string | undefined; heartbeatAt: number; output: string | undefined}[] {
    const rows = this.#db
      .prepare(
        `SELECT runs.run_id, runs.owner, ${HEARTBEAT} AS beat, checkpoints.output FROM runs LEFT JOIN checkpoints USING (run_id) WHERE runs.status = 'running'`,
      )
      .all() as {run_id: string; owner: string | null; beat: number; output: string | null}[];
    return rows.map((r) => ({runId: r.run_id, owner: r.owner ?? undefined, heartbeatAt: r.beat, output: r.output ?? undefined}));
  }

  /**
   * Marks as `interrupted` the `running` runs whose owner is gone, whoever finds them: the lease ran
   * out (`LEASE_MS` without a renewal), or `isOwnerGone` says so (the caller could take the run's
   * file lock). Each is one conditional update, so a run renewed meanwhile is left alone. Returns how many.
   */
  markInterrupted(now = Date.now(), isOwnerGone?: (run: {runId: string; output: string | undefined}) => boolean, except = ''): number {
    let count = 0;
    const gone = isOwnerGone ? this.listRunning().filter((r) => r.heartbeatAt >= now - LEASE_MS && isOwnerGone(r)) : [];
    this.#write(
      () => {
        count = this.#db
          .prepare(
            `UPDATE runs SET status = 'interrupted', ended_at = ?, stop = 'ownerGone', reason = 'its owner stopped renewing its lease (the process ended without recording the run)'
         WHERE status = 'running' AND ${HEARTBEAT} < ? AND run_id != ?`,
          )
          .run(now, now - LEASE_MS, except).changes;
        const update = this.#db.prepare(
          `UPDATE runs SET status = 'interrupted', ended_at = ?, stop = 'ownerGone', reason = 'the process that ran it ended without recording the run (its files were no longer locked)'
         WHERE run_id = ? AND status = 'running' AND ${HEARTBEAT} = ?`,
        );
        for (const run of gone) count += update.run(now, run.runId, run.heartbeatAt).changes;
      },
      {durable: true},
    );
    return count;
  }

  /** Records where a run reads and writes, so `--resume` can continue it. */
  saveResumeInfo(runId: string, info: ResumeInfo, now = Date.now()): void {
    this.#write(() => this.#saveResumeInfo(runId, info, now));
  }

  #saveResumeInfo(runId: string, info: ResumeInfo, now: number): void {
    this.#db
      .prepare(
        `INSERT INTO checkpoints (run_id, job_file, input, input_size, input_mtime, output, failures, updated_at, spec, job)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (run_id) DO UPDATE SET updated_at = excluded.updated_at`,
      )
      .run(
        runId,
        info.jobFile,
        info.input ?? null,
        info.inputIsStream ? -1 : (info.inputSize ?? null),
        info.inputMtimeMs ?? null,
        info.output,
        info.failures,
        now,
        info.spec ? JSON.stringify(info.spec) : null,
        info.job ? JSON.stringify(info.job) : null,
      );
  }

  /**
   * Records how much of a run's input it has read, and the hash of those bytes, before any record
   * read from them is sent: `--resume` compares the input against it. Never moves back (a resume
   * reads its input again from the start).
   */
  saveInputRead(runId: string, read: InputRead): void {
    this.#write(() =>
      this.#db
        .prepare('UPDATE checkpoints SET input_read = ?, input_sha256 = ? WHERE run_id = ? AND COALESCE(input_read, -1) < ?')
        .run(read.bytes, read.sha256, runId, read.bytes),
    );
  }

  /** Stores a run's progress (called about every second while it runs, and at its end). */
  saveCheckpoint(runId: string, checkpoint: Checkpoint, now = Date.now()): void {
    this.#write(() =>
      this.#db.prepare('UPDATE checkpoints SET results = ?, updated_at = ? WHERE run_id = ?').run(checkpoint.results, now, runId),
    );
  }

  getResumeInfo(runId: string): (ResumeInfo & {updatedAt: number}) | undefined {
    const row = this.#db.prepare('SELECT * FROM checkpoints WHERE run_id = ?').get(runId) as CheckpointRow | undefined;
    if (!row) return undefined;
    return {
      jobFile: row.job_file,
      input: row.input ?? undefined,
      inputSize: row.input_size === -1 ? undefined : (row.input_size ?? undefined),
      inputIsStream: row.input_size === -1,
      inputMtimeMs: row.input_mtime ?? undefined,
      output: row.output,
      failures: row.failures,
      updatedAt: row.updated_at,
      spec: row.spec ? (JSON.parse(row.spec) as RecordedSpec) : undefined,
      job: row.job ? (JSON.parse(row.job) as RecordedJob) : undefined,
      inputRead: row.input_read !== null && row.input_sha256 !== null ? {bytes: row.input_read, sha256: row.input_sha256} : undefined,
      results: row.results ?? undefined,
    };
  }

  /** The job's newest run that did not finish (interrupted, cancelled or ended by an error) and can be resumed. */
  findResumableRun(job: string, statuses: readonly RunStatus[] = ['interrupted', 'cancelled', 'error']): RunRecord | undefined {
    return this.findResumableRuns(job, statuses, 'newest')[0];
  }

  /** Every such run of the job, oldest first (or newest first). */
  findResumableRuns(job: string, statuses: readonly RunStatus[], order: 'oldest' | 'newest' = 'oldest'): RunRecord[] {
    const direction = order === 'oldest' ? 'ASC' : 'DESC';
    const rows = this.#db
      .prepare(
        `SELECT runs.* FROM runs JOIN checkpoints USING (run_id)
       WHERE runs.job = ? AND runs.status IN (${statuses.map(() => '?').join(', ')})
       ORDER BY runs.created_at ${direction}, runs.rowid ${direction}`,
      )
      .all(job, ...statuses) as RunRow[];
    const now = Date.now();
    return rows.map((row) => toRecord(row, now));
  }

  /**
   * Keeps the newest `keep` runs of `job` and deletes the older ones that ended for good
   * (succeeded, failed, skipped), with their checkpoints. Runs that may still be resumed
   * (interrupted, cancelled, error, and failed ones that maxFailures or maxInvalid stopped) and
   * running ones are never deleted. Returns how many went.
   */
  pruneRuns(job: string, keep: number): number {
    let deleted = 0;
    this.#write(() => {
      deleted = this.#db
        .prepare(
          `DELETE FROM runs WHERE job = ? AND status IN ('succeeded', 'failed', 'skipped') AND NOT ${THRESHOLD_ABORT}
         AND rowid NOT IN (SELECT rowid FROM runs WHERE job = ? ORDER BY created_at DESC, rowid DESC LIMIT ?)`,
        )
        .run(job, job, keep).changes;
      if (deleted > 0) this.#db.prepare('DELETE FROM checkpoints WHERE run_id NOT IN (SELECT run_id FROM runs)').run();
    });
    return deleted;
  }

  /** Closes the database. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  /**
   * One write transaction. `durable` ones (a run's start, claim and end) are fsynced at commit
   * (synchronous = FULL): a power cut cannot take back who owns a run or where its files are.
   */
  #write(fn: () => unknown, options: {durable?: boolean} = {}): void {
    if (!options.durable) return void this.#db.transaction(fn).immediate();
    this.#db.pragma('synchronous = FULL');
    try {
      this.#db.transaction(fn).immediate();
    } finally {
      this.#db.pragma('synchronous = NORMAL');
    }
  }
}

/** `{stop}` when there is one: a run that ran to its end has no such key. */
function stopOf(stop: StopReason | undefined): {stop?: StopReason} {
  return stop ? {stop} : {};
}

/** A row as a record; a `running` run whose lease ran out reads as `interrupted` (what any writer will record). */
function toRecord(row: RunRow, now: number): RunRecord {
  const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);
  const beat = row.heartbeat_at ?? row.started_at ?? row.created_at;
  const expired = row.status === 'running' && beat < now - LEASE_MS;
  return {
    runId: row.run_id,
    job: row.job,
    trigger: row.trigger,
    scheduledAt: opt(row.scheduled_at),
    createdAt: row.created_at,
    startedAt: opt(row.started_at),
    endedAt: expired ? beat : opt(row.ended_at),
    status: expired ? 'interrupted' : row.status,
    reason: expired ? `its owner stopped renewing its lease at ${new Date(beat).toISOString()}` : opt(row.reason),
    ...stopOf(expired ? 'ownerGone' : parseStopReason(row.stop)),
    total: opt(row.total),
    inputRecords: opt(row.input_records ?? null),
    ok: opt(row.ok),
    failed: opt(row.failed),
    invalid: opt(row.invalid),
    byStatus: row.by_status ? (JSON.parse(row.by_status) as Record<string, number>) : undefined,
    output: opt(row.output),
    failures: opt(row.failures),
    host: row.host,
    pid: row.pid,
    owner: opt(row.owner),
    heartbeatAt: opt(row.heartbeat_at),
  };
}
