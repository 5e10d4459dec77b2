import {formatDuration} from '../util/duration.js';
import type {LoadedJob} from '../config/load.js';
import type {Logger} from '../util/log.js';
import type {RunTrigger, StateStore} from '../state/store.js';
import {detectClockStep} from './clock-step.js';
import type {Clock} from './clock.js';
import {CronSchedule} from '../util/cron.js';
import type {StateSteps} from './state-steps.js';
import {catchUpTicks, dueTick} from './ticks.js';
import type {SchedulerEventName, SchedulerEvents} from './types.js';
import {formatInZone} from '../util/zone.js';

/** What the timetable reads and writes of a job: its definition, its cron and its next tick. */
export interface TimedEntry {
  loaded: LoadedJob;
  cron: CronSchedule | undefined;
  nextFireAt: number | undefined;
}

export type Emit = <E extends SchedulerEventName>(
  event: E,
  payload: SchedulerEvents[E],
  level?: 'debug' | 'info' | 'warn' | 'error',
  message?: string,
) => void;

export interface TimetableOptions<E extends TimedEntry> {
  readonly clock: Clock;
  readonly store: StateStore | undefined;
  readonly state: StateSteps;
  readonly log: Logger | undefined;
  readonly random: () => number;
  readonly maxTimerMs: number;
  readonly emit: Emit;
  /** The jobs by name, as they are now (a reload changes them). */
  readonly jobs: () => ReadonlyMap<string, E>;
  /** A tick is due (after its jitter): apply the overlap policy and start, queue or skip. */
  readonly dispatch: (entry: E, trigger: RunTrigger, scheduledAt: number) => void;
  /** A tick that will not run (the scheduler stopped during its jitter delay). */
  readonly skip: (entry: E, trigger: RunTrigger, scheduledAt: number, reason: string) => void;
}

/**
 * The scheduler's tick planning: one timer on the injected clock for every job, the catch-up of a
 * tick missed while the daemon was down, late wakes folded into one run, a wall clock that steps
 * back, and each tick's jitter. It says when a tick is due; what runs is the scheduler's business.
 */
export class Timetable<E extends TimedEntry> {
  readonly #o: TimetableOptions<E>;
  #timer: unknown;
  /** Ticks waiting out their jitter: skipped on stop. */
  readonly #jittered = new Map<unknown, {entry: E; trigger: RunTrigger; scheduledAt: number}>();
  /** When the armed timer should fire, on the wall clock: a wake well before it means the clock went back. */
  #expectedWakeAt: number | undefined;
  #lastWakeAt = 0;
  #running = false;

  constructor(options: TimetableOptions<E>) {
    this.#o = options;
  }

  /** Whether the timer fired when it should have (the daemon's /healthz). */
  get onTime(): boolean {
    return this.#o.clock.now() - this.#lastWakeAt <= this.#o.maxTimerMs * 2 + 5000;
  }

  /** Plans a job's next tick; at start-up (or when a reload adds it) it first catches up. */
  plan(entry: E, catchUp: boolean): void {
    const spec = entry.loaded.spec;
    const schedule = spec.schedule;
    entry.cron = schedule ? new CronSchedule(schedule.expression, schedule.timezone) : undefined;
    entry.nextFireAt = undefined;
    if (!schedule || !entry.cron) {
      this.#o.log?.info({job: spec.name, event: 'job:manual'}, `${spec.name} has no schedule: it runs only when triggered`);
    } else if (!schedule.enabled) {
      this.#o.log?.info({job: spec.name, event: 'job:disabled'}, `${spec.name} is disabled (enabled: false): it runs only when triggered`);
    } else {
      const now = this.#o.clock.now();
      if (catchUp) this.#catchUp(entry, entry.cron, now);
      entry.nextFireAt = entry.cron.next(now);
    }
    const next = entry.nextFireAt;
    this.#o.emit(
      'job:scheduled',
      {job: spec.name, nextFireAt: next},
      'info',
      next === undefined
        ? `${spec.name}: not scheduled`
        : `${spec.name}: next run ${formatInZone(next, schedule!.timezone)} (${new Date(next).toISOString()})`,
    );
  }

  /** Starts the timer (the jobs are planned first). */
  start(): void {
    this.#running = true;
    this.#lastWakeAt = this.#o.clock.now();
    this.arm();
  }

  /** Arms the one timer for the earliest next tick (at most `maxTimerMs` away: the loop's heartbeat). */
  arm(): void {
    this.#disarm();
    if (!this.#running) return;
    let next: number | undefined;
    for (const entry of this.#o.jobs().values())
      if (entry.nextFireAt !== undefined && (next === undefined || entry.nextFireAt < next)) next = entry.nextFireAt;
    const now = this.#o.clock.now();
    const delay = next === undefined ? this.#o.maxTimerMs : Math.min(Math.max(0, next - now), this.#o.maxTimerMs);
    this.#expectedWakeAt = now + delay;
    this.#timer = this.#o.clock.setTimer(() => this.#wake(), delay);
  }

  #disarm(): void {
    if (this.#timer !== undefined) this.#o.clock.clearTimer(this.#timer);
    this.#timer = undefined;
  }

  /** Stops: no timer, and every tick still in its jitter delay is skipped. */
  stop(): void {
    this.#running = false;
    this.#disarm();
    for (const [handle, fired] of this.#jittered) {
      this.#o.clock.clearTimer(handle);
      this.#o.skip(fired.entry, fired.trigger, fired.scheduledAt, 'the scheduler stopped during its jitter delay');
    }
    this.#jittered.clear();
  }

  /** Runs once the latest tick missed within the job's catchUp window since its last stored tick. */
  #catchUp(entry: E, cron: CronSchedule, now: number): void {
    const {store, state} = this.#o;
    const name = entry.loaded.spec.name;
    const windowMs = entry.loaded.spec.schedule?.catchUpMs ?? 0;
    const last = state.try('state:read', () => store?.getLastTick(name));
    if (!store || last === undefined) {
      // Nothing stored: ticks from now on are the ones that count.
      state.write('state:write', () => store?.setLastTick(name, now, now));
      return;
    }
    const {first, latest, missed} = catchUpTicks(cron, last, now, windowMs);
    if (first === undefined) return;
    if (missed > 0) {
      const why = windowMs === 0 ? 'catchUp is 0' : `outside the catchUp window of ${formatDuration(windowMs)}`;
      this.#o.emit(
        'tick:missed',
        {job: name, firstAt: first, count: missed, reason: why},
        'warn',
        `${name}: ${missed} tick(s) since ${new Date(first).toISOString()} missed while not running, not run (${why})`,
      );
    }
    state.write('state:write', () => store.setLastTick(name, latest ?? now, now));
    if (latest !== undefined) this.#fire(entry, 'catch-up', latest);
  }

  #wake(): void {
    this.#timer = undefined;
    const {clock, emit, state, store} = this.#o;
    const now = clock.now();
    this.#lastWakeAt = now;
    const stepMs = detectClockStep(this.#expectedWakeAt, now);
    if (stepMs !== undefined) {
      // Timers count real time; the wall clock went back (NTP, a VM restored): the planned ticks
      // are now that much later than they should be. Plan every job again from the new time.
      for (const entry of this.#o.jobs().values())
        if (entry.cron && entry.nextFireAt !== undefined) entry.nextFireAt = entry.cron.next(now);
      emit(
        'clock:stepped-back',
        {byMs: stepMs, at: now},
        'warn',
        `the wall clock went back by ${formatDuration(stepMs)}; every schedule is planned again from ${new Date(now).toISOString()}`,
      );
    }
    for (const entry of this.#o.jobs().values()) {
      const cron = entry.cron;
      const due = cron ? dueTick(cron, entry.nextFireAt, now) : undefined;
      if (!cron || !due || entry.nextFireAt === undefined) continue;
      const name = entry.loaded.spec.name;
      // Woken late (machine sleep, a blocked loop): run the latest due tick once, report the others.
      const {tick, missed, next} = due;
      if (missed > 0)
        emit(
          'tick:missed',
          {job: name, firstAt: entry.nextFireAt, count: missed, reason: 'the process was not running on time'},
          'warn',
          `${name}: woke up late; ${missed} tick(s) from ${new Date(entry.nextFireAt).toISOString()} folded into one run`,
        );
      entry.nextFireAt = next;
      state.write('state:write', () => store?.setLastTick(name, tick, now));
      this.#fire(entry, 'schedule', tick);
      emit(
        'job:scheduled',
        {job: name, nextFireAt: next},
        'debug',
        next === undefined ? `${name}: no further ticks` : `${name}: next run ${formatInZone(next, cron.timezone)}`,
      );
    }
    this.arm();
  }

  /** A tick came: wait out the job's jitter, then dispatch. */
  #fire(entry: E, trigger: RunTrigger, scheduledAt: number): void {
    const jitterMs = entry.loaded.spec.schedule?.jitterMs ?? 0;
    if (jitterMs <= 0) return this.#o.dispatch(entry, trigger, scheduledAt);
    const delay = Math.floor(this.#o.random() * jitterMs);
    const handle: unknown = this.#o.clock.setTimer(() => {
      this.#jittered.delete(handle);
      this.#o.dispatch(this.#o.jobs().get(entry.loaded.spec.name) ?? entry, trigger, scheduledAt);
    }, delay);
    this.#jittered.set(handle, {entry, trigger, scheduledAt});
  }
}
