// Levelled diagnostics: the CLI's -v / --log-level. A logger only filters and prefixes; where a
// line goes (stderr, a detached mount's log) and its scrubbing (no secret, no control character)
// are the sink's business, so every line takes the path notices take today.
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A message, or a function making it: debug lines per chunk are built only when shown. */
export type LogMessage = string | (() => string);

export interface Logger {
  readonly level: LogLevel;
  /** Whether lines of `level` are shown: for callers that would do work to build one. */
  enabled(level: LogLevel): boolean;
  error(message: LogMessage): void;
  /** What the CLI has always printed as a notice (a layer read whole, a mirror passed over). */
  warn(message: LogMessage): void;
  /** -v: each registry request (method, host, path, status, bytes, time) and each retry. */
  info(message: LogMessage): void;
  /** -vv: also every chunk looked up in the cache (memory, disk or miss). */
  debug(message: LogMessage): void;
}

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export function isLogLevel(value: string): value is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

/**
 * Lines up to `level` go to `write`. Warnings are written as they are (they are the notices
 * users and tests know); the other levels carry their name first ("debug: GET ...").
 */
export function createLogger(level: LogLevel, write: (line: string) => void): Logger {
  const at = (l: LogLevel) => (message: LogMessage): void => {
    if (RANK[l] > RANK[level]) return;
    const text = typeof message === 'function' ? message() : message;
    write(l === 'warn' ? text : `${l}: ${text}`);
  };
  return { level, enabled: (l) => RANK[l] <= RANK[level], error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}

/** Shows nothing: the library's default. */
export const silentLogger: Logger = createLogger('error', () => undefined);
