import {Option, type Command} from 'commander';
import {flaggedKeys, type FlagValue} from '../src/config/job-keys.js';
import {parseDurationFlag, parseIntFlag, parseNumberFlag, parseSizeFlag, parseWorkersFlag} from './flags.js';

/** The commander parser of each kind of flag value (none: the text as typed). */
function parserOf(value: FlagValue): ((text: string) => unknown) | undefined {
  if (typeof value === 'object')
    return 'int' in value ? parseIntFlag(value.int) : 'number' in value ? parseNumberFlag(value.number) : undefined;
  return {duration: parseDurationFlag, size: parseSizeFlag, workers: parseWorkersFlag}[value as string] as
    | ((text: string) => unknown)
    | undefined;
}

/**
 * The flags that override job keys, made from their declaration (src/config/job-keys.ts): all of
 * them for `run`, those marked `validate` for `validate`.
 */
export function jobKeyOptions(command: 'run' | 'validate'): Option[] {
  return flaggedKeys()
    .filter(({declaration: {flag}}) => command === 'run' || flag.validate)
    .map(({declaration: {flag}}) => {
      const option = new Option(flag.flags, flag.help);
      const parse = parserOf(flag.value);
      if (parse) option.argParser(parse);
      if (typeof flag.value === 'object' && 'choices' in flag.value) option.choices(flag.value.choices);
      return option;
    });
}

/** Adds the override flags of `command` to it; returns it, for commander's chain. */
export function withJobKeyOptions<C extends Command>(target: C, command: 'run' | 'validate'): C {
  for (const option of jobKeyOptions(command)) target.addOption(option);
  return target;
}
