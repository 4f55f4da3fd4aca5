/**
 * Structured logging: one JSON object per line, which Cloud Logging parses as a structured entry
 * (`severity` and `message` are its reserved keys).
 *
 * Secrets and ciphertext must never reach a log line. Callers pass only the fields they mean to log,
 * and as a second line of defence any field whose name is in SENSITIVE_KEYS is replaced before writing.
 */

export type LogLevel = "debug" | "info" | "warn" | "error";

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const SEVERITY: Record<LogLevel, string> = {
  debug: "DEBUG",
  info: "INFO",
  warn: "WARNING",
  error: "ERROR",
};

export const SENSITIVE_KEYS = new Set(
  [
    "password",
    "passwordHash",
    "token",
    "accessToken",
    "refreshToken",
    "authorization",
    "cookie",
    "secret",
    "jwtSecret",
    "encryptedContent",
    "encryptedData",
    "iv",
    "authTag",
    "nonce",
    "signature",
    "publicKey",
    "ephemeralPublicKey",
  ].map((key) => key.toLowerCase()),
);

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export type LogSink = (line: string) => void;

function redact(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== "object" || depth > 4) return value;
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) {
    out[key] = SENSITIVE_KEYS.has(key.toLowerCase()) ? "[redacted]" : redact(inner, depth + 1);
  }
  return out;
}

export function createLogger(options: { level?: LogLevel; sink?: LogSink } = {}): Logger {
  const threshold = LEVEL_ORDER[options.level ?? "info"];
  const sink: LogSink = options.sink ?? ((line) => process.stdout.write(line + "\n"));

  const write = (level: LogLevel, message: string, fields: LogFields = {}) => {
    if (LEVEL_ORDER[level] < threshold) return;
    const entry = {
      severity: SEVERITY[level],
      message,
      time: new Date().toISOString(),
      ...(redact(fields) as LogFields),
    };
    sink(JSON.stringify(entry));
  };

  return {
    debug: (message, fields) => write("debug", message, fields),
    info: (message, fields) => write("info", message, fields),
    warn: (message, fields) => write("warn", message, fields),
    error: (message, fields) => write("error", message, fields),
  };
}
