import pino from 'pino';

export type Logger = pino.Logger;

/**
 * The logger: JSON lines on stderr (stdout is kept for `--json` summaries). `GRPC_BATCH_LOG`
 * sets the level (`debug`, `info`, `warn`, `error`, `silent`).
 * @default 'info'
 */
export function createLogger(options: {level?: string} = {}): Logger {
  return pino(
    {level: options.level ?? process.env['GRPC_BATCH_LOG'] ?? 'info', base: undefined},
    pino.destination({dest: 2, sync: true}),
  );
}
