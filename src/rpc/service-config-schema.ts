/**
 * JSON Schema (draft-07) for a gRPC service config, as passed in the `grpc.service_config` channel
 * option. Mirrors grpc/grpc doc/service_config.md and grpc-proto grpc/service_config/service_config.proto
 * (the parts a client reads), with `additionalProperties: false` everywhere so misspelled and
 * misplaced keys are caught: grpc-js itself ignores unknown keys.
 *
 * Every leaf has a `description` phrased as "what was expected"; `checkChannelOptions` turns it into
 * the message `expected <description>, got <value>`.
 */
import {STATUS_NAMES} from '../codec/status.js';

/** `1s`, `0.25s`: seconds with up to 9 fractional digits, as gRPC's JSON mapping of Duration. */
export const DURATION_PATTERN = '^\\d+(\\.\\d{1,9})?s$';
/** The same, but not zero. */
const POSITIVE_DURATION_PATTERN = '^(?!0*(\\.0*)?s$)\\d+(\\.\\d{1,9})?s$';

const duration = {type: 'string', pattern: DURATION_PATTERN, description: 'a duration in seconds like "1.5s"'};
const positiveDuration = {type: 'string', pattern: POSITIVE_DURATION_PATTERN, description: 'a duration above zero in seconds like "0.1s"'};
const statusCode = {
  type: ['string', 'integer'],
  // grpc-js compares names case-insensitively.
  enum: [...STATUS_NAMES, ...STATUS_NAMES.map((name) => name.toLowerCase()), ...Array.from({length: 17}, (_, code) => code)],
  description: 'a status name like "UNAVAILABLE" or a code from 0 to 16',
};
const statusCodes = (nonEmpty: boolean) => ({
  type: 'array',
  items: statusCode,
  ...(nonEmpty ? {minItems: 1} : {}),
  description: nonEmpty ? 'a non-empty list of status names like ["UNAVAILABLE"]' : 'a list of status names like ["UNAVAILABLE"]',
});
const maxAttempts = {type: 'integer', minimum: 2, description: 'an integer from 2 up (the first attempt counts)'};
const messageBytes = {
  type: ['integer', 'string'],
  minimum: 0,
  pattern: '^\\d+$',
  description: 'a whole number of bytes',
};

const retryPolicy = {
  type: 'object',
  description: 'a retry policy object',
  additionalProperties: false,
  required: ['maxAttempts', 'initialBackoff', 'maxBackoff', 'backoffMultiplier', 'retryableStatusCodes'],
  properties: {
    maxAttempts,
    initialBackoff: positiveDuration,
    maxBackoff: positiveDuration,
    backoffMultiplier: {type: 'number', exclusiveMinimum: 0, description: 'a number above 0'},
    retryableStatusCodes: statusCodes(true),
    perAttemptRecvTimeout: positiveDuration,
  },
};

const hedgingPolicy = {
  type: 'object',
  description: 'a hedging policy object',
  additionalProperties: false,
  required: ['maxAttempts'],
  properties: {
    maxAttempts,
    hedgingDelay: duration,
    nonFatalStatusCodes: statusCodes(false),
  },
};

const methodName = {
  type: 'object',
  description: 'a method name like {"service":"pkg.Service","method":"Method"}',
  additionalProperties: false,
  properties: {
    service: {type: 'string', description: 'a fully qualified service name like "pkg.Service"'},
    method: {type: 'string', description: 'a method name like "GetThing"'},
  },
};

const methodConfig = {
  type: 'object',
  description: 'a method config object',
  additionalProperties: false,
  required: ['name'],
  properties: {
    name: {type: 'array', items: methodName, description: 'a list of names like [{"service":"pkg.Service"}]'},
    waitForReady: {type: 'boolean', description: 'true or false'},
    timeout: duration,
    maxRequestMessageBytes: messageBytes,
    maxResponseMessageBytes: messageBytes,
    retryPolicy,
    hedgingPolicy,
  },
  not: {required: ['retryPolicy', 'hedgingPolicy']},
};

export const SERVICE_CONFIG_SCHEMA = {
  $id: 'grpc-service-config',
  type: 'object',
  description: 'a service config object',
  additionalProperties: false,
  properties: {
    loadBalancingPolicy: {type: 'string', description: 'a policy name like "round_robin"'},
    loadBalancingConfig: {
      type: 'array',
      description: 'a list of single-key objects like [{"round_robin":{}}]',
      items: {
        type: 'object',
        minProperties: 1,
        maxProperties: 1,
        additionalProperties: {type: 'object', description: 'a policy config object like {}'},
        description: 'a single-key object like {"round_robin":{}}',
      },
    },
    methodConfig: {type: 'array', items: methodConfig, description: 'a list of method config objects'},
    retryThrottling: {
      type: 'object',
      description: 'an object like {"maxTokens":10,"tokenRatio":0.1}',
      additionalProperties: false,
      required: ['maxTokens', 'tokenRatio'],
      properties: {
        maxTokens: {type: 'number', exclusiveMinimum: 0, maximum: 1000, description: 'a number above 0 and at most 1000'},
        tokenRatio: {type: 'number', exclusiveMinimum: 0, description: 'a number above 0'},
      },
    },
    healthCheckConfig: {
      type: 'object',
      description: 'an object like {"serviceName":""}',
      additionalProperties: false,
      properties: {serviceName: {type: 'string', description: 'a service name'}},
    },
  },
} as const;

/** Keys that belong in a `methodConfig` entry, for "misplaced key" messages. */
export const METHOD_CONFIG_KEYS: readonly string[] = Object.keys(methodConfig.properties);
/** Keys that belong at the top level of the service config. */
export const TOP_LEVEL_KEYS: readonly string[] = Object.keys(SERVICE_CONFIG_SCHEMA.properties);
