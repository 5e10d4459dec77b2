/** Signals received before the daemon has wired its own handlers, in the order they came. */
const held: NodeJS.Signals[] = [];
const SIGNALS: readonly NodeJS.Signals[] = ['SIGHUP', 'SIGTERM', 'SIGINT'];
const hold = (signal: NodeJS.Signals) => void held.push(signal);

/** From now on SIGHUP, SIGTERM and SIGINT are held instead of ending the process. */
export function holdStartupSignals(): void {
  for (const signal of SIGNALS) process.on(signal, hold);
}

/** Stops holding; returns what was held (the caller has its own handlers by now). */
export function takeHeldSignals(): NodeJS.Signals[] {
  for (const signal of SIGNALS) process.off(signal, hold);
  return held.splice(0);
}
