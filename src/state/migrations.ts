/**
 * The state database's schema, as an ordered list of migrations. `PRAGMA user_version` holds the
 * number of migrations applied; opening a database applies the missing ones in one transaction.
 * Append only: never edit a migration that has shipped.
 */
export interface Migration {
  /** 1-based; equals the user_version after it ran. */
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'runs and per-job last fired tick',
    sql: `
      CREATE TABLE runs (
        run_id       TEXT PRIMARY KEY,
        job          TEXT NOT NULL,
        trigger      TEXT NOT NULL CHECK (trigger IN ('schedule', 'catch-up', 'manual')),
        scheduled_at INTEGER,            -- ms since epoch: the tick the run was for; NULL for manual runs
        created_at   INTEGER NOT NULL,   -- ms: when the row was written (orders history)
        started_at   INTEGER,            -- ms; NULL for skipped runs
        ended_at     INTEGER,            -- ms; NULL while running
        status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled', 'skipped', 'error', 'interrupted')),
        reason       TEXT,               -- why skipped / cancelled / error
        total        INTEGER,
        ok           INTEGER,
        failed       INTEGER,
        invalid      INTEGER,
        by_status    TEXT,               -- JSON: {"OK": 10, "UNAVAILABLE": 2}
        output       TEXT,               -- results file
        failures     TEXT,               -- failures file
        host         TEXT NOT NULL,
        pid          INTEGER NOT NULL
      );
      CREATE INDEX runs_by_job ON runs (job, created_at DESC);
      CREATE INDEX runs_by_created ON runs (created_at DESC);
      CREATE TABLE job_ticks (
        job          TEXT PRIMARY KEY,
        last_tick_at INTEGER NOT NULL,   -- ms: the latest tick fired or deliberately passed over
        updated_at   INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    description: 'run checkpoints, for --resume',
    sql: `
      CREATE TABLE checkpoints (
        run_id       TEXT PRIMARY KEY,
        job_file     TEXT NOT NULL,      -- absolute path of the job file
        input        TEXT,               -- absolute input path; NULL for a module's requests()
        input_size   INTEGER,            -- bytes, when the run started: a changed input cannot be resumed
        input_mtime  INTEGER,            -- ms
        output       TEXT NOT NULL,      -- results file (absolute)
        failures     TEXT NOT NULL,      -- failures file (absolute)
        low_water    INTEGER NOT NULL DEFAULT 0,   -- every record at or below this line is finished
        done_above   TEXT NOT NULL DEFAULT '[]',   -- JSON: finished lines above low_water
        updated_at   INTEGER NOT NULL
      );
    `,
  },
  {
    version: 3,
    description: 'run owners and leases, and the effective spec of a run, for --resume',
    sql: `
      ALTER TABLE runs ADD COLUMN owner TEXT;           -- random id of the process that runs it (host/pid/random)
      ALTER TABLE runs ADD COLUMN heartbeat_at INTEGER; -- ms: the owner's last renewal of its lease
      ALTER TABLE checkpoints ADD COLUMN spec TEXT;     -- JSON: target, concurrency, rps, deadline, maxAttempts the run started with
    `,
  },
  {
    version: 4,
    description: "the number of records in a run's input, for history",
    sql: `
      ALTER TABLE runs ADD COLUMN input_records INTEGER;  -- records in the input when it was counted (a file); total is records read
    `,
  },
  {
    version: 5,
    description: 'what a run sends, how much of its input it read (hashed), and its result lines, for --resume',
    sql: `
      ALTER TABLE checkpoints ADD COLUMN job TEXT;            -- JSON: method, request type, input format, metadata hashes the run started with
      ALTER TABLE checkpoints ADD COLUMN input_read INTEGER;  -- bytes of the input read so far (recorded before any of their records is sent)
      ALTER TABLE checkpoints ADD COLUMN input_sha256 TEXT;   -- SHA-256 (hex) of those bytes
      ALTER TABLE checkpoints ADD COLUMN results INTEGER;     -- result lines in the results file at the last checkpoint
    `,
  },
  {
    version: 6,
    description: 'why a run stopped, as data (resume and pruning read it, not the reason text)',
    // Rows of older versions: the kind is derived once from their status and reason text, as written then.
    sql: `
      ALTER TABLE runs ADD COLUMN stop TEXT;  -- StopReason (src/stop-reason.ts): signal, maxFailures, maxInvalid, outage, io, queue, ownerGone, error; NULL when it ran to the end
      UPDATE runs SET stop = CASE
        WHEN status = 'failed' AND reason LIKE 'maxFailures: %' THEN 'maxFailures'
        WHEN status = 'failed' AND reason LIKE 'maxInvalid: %' THEN 'maxInvalid'
        WHEN status = 'interrupted' AND (reason LIKE 'its owner stopped renewing its lease%' OR reason LIKE 'the process that ran it ended without recording the run%') THEN 'ownerGone'
        WHEN status = 'cancelled' THEN 'signal'
        WHEN status = 'error' THEN 'error'
        ELSE NULL END;
    `,
  },
  {
    version: 7,
    description: "drop the checkpoints' low-water mark and finished lines: never read (--resume reads the results file back)",
    sql: `
      ALTER TABLE checkpoints DROP COLUMN low_water;
      ALTER TABLE checkpoints DROP COLUMN done_above;
    `,
  },
];
