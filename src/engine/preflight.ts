import {ValidationError} from '../errors.js';
import type {LoadedJob} from '../config/load.js';
import type {Logger} from '../util/log.js';
import {callUnary} from '../rpc/call.js';
import {ChannelPool} from '../rpc/channel.js';
import {cleanDetails, hintFor} from '../rpc/explain.js';
import {buildMetadata} from '../rpc/metadata.js';
import {HEALTH_CHECK} from '../rpc/probe.js';
import {Status, statusName} from '../codec/status.js';

/** How long the check waits for an answer. */
export const PREFLIGHT_TIMEOUT_MS = 5000;

/** The outcome of `probeTarget`. */
export type ProbeResult =
  | {readonly ok: true; readonly answer: string}
  | {readonly ok: false; readonly problem: string; readonly hint: string | undefined};

/**
 * Checks that the job's target answers gRPC, with the job's TLS, channel options and metadata: one
 * health-check call. A server without the health service answers UNIMPLEMENTED, which is an answer
 * too; no answer (nothing listening, TLS mismatch, a name that does not resolve) is a problem.
 */
export async function probeTarget(job: LoadedJob, timeoutMs = PREFLIGHT_TIMEOUT_MS): Promise<ProbeResult> {
  const {spec} = job;
  const pool = new ChannelPool({target: spec.target, tls: spec.tls, channelOptions: spec.channelOptions});
  try {
    const outcome = await callUnary(pool.pick(), HEALTH_CHECK, HEALTH_CHECK.encodeRequest({}), {
      deadlineMs: timeoutMs,
      metadata: buildMetadata(spec.metadata),
    });
    if (outcome.ok) return {ok: true, answer: `health: ${(outcome.response as {status: string}).status}`};
    if (outcome.code === Status.UNIMPLEMENTED || outcome.code === Status.NOT_FOUND) {
      return {ok: true, answer: `it has no health service (${statusName(outcome.code)}), but it answers gRPC`};
    }
    const context = {target: spec.target, tls: spec.tls !== undefined, deadlineMs: timeoutMs};
    return {
      ok: false,
      problem: `${statusName(outcome.code)}: ${cleanDetails(outcome.details)}`,
      hint: hintFor(outcome.code, outcome.details, context),
    };
  } finally {
    pool.close();
  }
}

/** `run --preflight`: throws `ValidationError` (exit 2, nothing sent) when the target does not answer. */
export async function preflight(job: LoadedJob, log?: Logger): Promise<void> {
  const result = await probeTarget(job);
  if (!result.ok) {
    throw new ValidationError([{file: job.spec.file, path: 'target', message: describeProblem(job, result)}], {
      title: 'the target does not answer; nothing was sent',
    });
  }
  log?.info({event: 'preflight:ok', target: job.spec.target}, `${job.spec.target} answers (${result.answer})`);
}

export function describeProblem(job: LoadedJob, result: {problem: string; hint: string | undefined}): string {
  return `${job.spec.target} does not answer: ${result.problem}${result.hint ? ` (hint: ${result.hint})` : ''}`;
}
