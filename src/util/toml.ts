// TOML documents of ours (config.toml, containerd's hosts.toml): parsed by smol-toml, with
// errors that name the file, the line and the key, the one way both files report problems.
import { parse, TomlError } from 'smol-toml';
import { ErrorCodes, StargzError } from '../errors.js';

export interface TomlDoc {
  doc: Record<string, unknown>;
  /** Throws ERR_CONFIG naming `file:line: table.key: why`. */
  fail(table: string | undefined, key: string, why: string): never;
}

/** Parses `text` (read from `file`); a syntax error is ERR_CONFIG at its line. */
export function parseToml(text: string, file: string): TomlDoc {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) throw new StargzError(ErrorCodes.CONFIG, `${file}:${err.line}: ${err.message.split('\n', 1)[0]}`);
    throw err;
  }
  const fail = (table: string | undefined, key: string, why: string): never => {
    throw new StargzError(ErrorCodes.CONFIG, `${file}:${lineOf(text, table, key)}: ${table ? `${table}.` : ''}${key}: ${why}`);
  };
  return { doc, fail };
}

export function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * The line of `key` (inside `[table]` when given): TOML parsers keep no positions of keys,
 * so find the key's assignment after its table header, or the header itself.
 */
function lineOf(text: string, table: string | undefined, key: string): number {
  const lines = text.split('\n');
  const norm = (s: string): string => s.replace(/\s+/g, '').replace(/'/g, '"');
  let inTable = table === undefined;
  let headerLine = 0;
  const keyRe = new RegExp(`^\\s*(?:${escapeRe(key)}|"${escapeRe(key)}"|'${escapeRe(key)}')\\s*=`);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const header = /^\s*\[+([^\]]+)\]+/.exec(line);
    if (header) {
      const name = norm(header[1]!);
      if (table === undefined) inTable = false;
      else {
        inTable = name === norm(table);
        if (inTable) headerLine = i + 1;
      }
      if (table === undefined && name === key) return i + 1;
      continue;
    }
    if (inTable && keyRe.test(line)) return i + 1;
  }
  return headerLine || 1;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
