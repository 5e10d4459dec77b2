import {Command} from 'commander';
import {formatIssue, ValidationError, type Issue} from '../../src/errors.js';
import {withJobKeyOptions} from '../job-key-options.js';

interface ValidateFlags {
  readonly input?: string;
  readonly outDir?: string;
  readonly connect?: boolean;
  readonly maxLineBytes?: number;
}

export const validate = withJobKeyOptions(
  new Command('validate')
    .description('check a job file, its files and every input record; send nothing (exit 2 on any problem)')
    .argument('<job>', 'job file'),
  'validate',
) // -i, --max-line-bytes: from src/config/job-keys.ts
  .option('--out-dir <folder>', 'folder of the default results and failures files, as for run (default ./out)')
  .option('--connect', 'also check that the target answers (one health-check call, no record sent)')
  .action(async (jobFile: string, flags: ValidateFlags) => {
    const [{checkInput}, {loadJob}, {checkFilesWritable}] = await Promise.all([
      import('../../src/engine/check-input.js'),
      import('../../src/config/load.js'),
      import('../../src/config/outputs.js'),
    ]);
    const job = await loadJob(jobFile, flags);
    for (const warning of job.warnings) process.stderr.write(`warning: ${formatIssue(warning)}\n`);
    const files = checkFilesWritable(job.spec, {asRun: true}); // what run would refuse, validate refuses
    if (files.length > 0) throw new ValidationError(files, {title: 'a run could not write its files'});
    const check = await checkInput(job);
    for (const warning of check.warnings) process.stderr.write(`warning: ${formatIssue(warning)}\n`);
    if (check.invalid > 0) {
      const more = check.invalid - check.issues.length;
      const issues: Issue[] = [
        ...check.issues,
        ...(more > 0 ? [{file: check.label, path: '', message: `${more} more invalid records`}] : []),
        ...check.hints.map((h) => ({...h, severity: 'error' as const})),
      ];
      throw new ValidationError(issues, {
        title: `${count(check.invalid, 'input record')} of ${check.total} ${check.invalid === 1 ? 'is' : 'are'} not valid; nothing was sent`,
      });
    }
    let answer = '';
    if (flags.connect) {
      const {describeProblem, probeTarget} = await import('../../src/engine/preflight.js');
      const result = await probeTarget(job);
      if (!result.ok)
        throw new ValidationError([{file: job.spec.file, path: 'target', message: describeProblem(job, result)}], {
          title: 'the target does not answer',
        });
      answer = `; ${job.spec.target} answers (${result.answer})`;
    }
    process.stdout.write(
      `${job.spec.file}: ok: ${job.method.name} on ${job.spec.target} (schema: ${job.method.origin}), ${count(check.total, 'record')} valid${answer}\n`,
    );
  });

/** `1 record`, `3 records`. */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
